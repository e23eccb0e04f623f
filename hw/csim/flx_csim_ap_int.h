// flx_csim_ap_int.h -- C-simulation stand-in for the subset of Vitis HLS
// ap_int<W> / ap_uint<W> (W <= 64) that the FlexLLM kernels in hw/kernels use.
//
// Used ONLY when the real Vitis headers are absent (see hw/kernels/flx_hls.h).
// The FPGA build always uses AMD's <ap_int.h>.  Written from the semantics in
// docs/hls-types.md §1 and docs/reference-design.md §0.3:
//
//  * A value is its W-bit two's-complement pattern; ap_int reads it signed,
//    ap_uint unsigned.  Every store (construction, assignment, compound
//    assignment) wraps modulo 2^W.
//  * Binary + - * / % & | ^ compute the exact integer result and return an
//    ap type of the real headers' result width (RType): * -> W1+W2,
//    + and - -> max(W1', W2') + 1 where an unsigned operand mixed with a
//    signed one counts one bit more, - is always signed, / -> W1 + S2,
//    % -> min(W1, W2 + (!S2 && S1)), bitwise -> max(W1', W2').  A C integer
//    operand counts as ap_int<32> (int), ap_uint<32> (unsigned), ap_int<64>
//    (long, long long) ...  LIMITATION: result widths are capped at 64 bits,
//    where the real headers keep growing; the kernels never form values that
//    need more (their exact sums are far below 2^63).
//  * << and >> keep the operand's width (bits shifted out are lost); >> is
//    arithmetic for ap_int, logical for ap_uint.
//  * float/double -> ap: truncation toward zero, then wrap modulo 2^W.
//    NaN and +-inf give 0 (the real headers leave them unspecified; the
//    kernels only convert already-rounded finite values).  Note: the
//    open-source 2019 headers return +1 for negative inputs in (-0.5, 0);
//    this shim returns 0 (true truncation), as docs/hls-types.md §1.1 says.
//  * ap OP float converts the integer to a C integer (int for W <= 32) and
//    then operates in float, as the real headers' OP_BIN_WITH_FLOAT macros
//    do; likewise for double.
//  * x.range(hi, lo) reads bits hi..lo as an unsigned value (assign it to an
//    ap_int<hi-lo+1> to get a two's-complement field) and can be assigned.
//    Arithmetic directly on a range reference is not supported: store it in
//    a typed variable first (the kernels do).
//  * Implicit conversion to long long (ap_int) / unsigned long long (ap_uint)
//    for indexing and conditions; to_int(), to_uint(), to_int64(),
//    to_uint64(), to_long(), length().
#ifndef FLX_CSIM_AP_INT_H
#define FLX_CSIM_AP_INT_H

#include <cmath>
#include <cstdint>
#include <type_traits>

namespace flx_csim {

__extension__ typedef __int128 wide_t;
__extension__ typedef unsigned __int128 uwide_t;

constexpr int cap64(int w) { return w > 64 ? 64 : w; }
constexpr int imax(int a, int b) { return a > b ? a : b; }
constexpr int imin(int a, int b) { return a < b ? a : b; }

// Result types of the real headers (docs/hls-types.md §1.1 "Result widths").
template <int W1, bool S1, int W2, bool S2>
struct rtype {
    static constexpr int e1 = W1 + (S2 && !S1);
    static constexpr int e2 = W2 + (S1 && !S2);
    static constexpr int mult_w = cap64(W1 + W2);
    static constexpr bool mult_s = S1 || S2;
    static constexpr int plus_w = cap64(imax(e1, e2) + 1);
    static constexpr bool plus_s = S1 || S2;
    static constexpr int minus_w = cap64(imax(e1, e2) + 1);
    static constexpr bool minus_s = true;
    static constexpr int div_w = cap64(W1 + S2);
    static constexpr bool div_s = S1 || S2;
    static constexpr int mod_w = imin(W1, W2 + (!S2 && S1));
    static constexpr bool mod_s = S1;
    static constexpr int logic_w = cap64(imax(e1, e2));
    static constexpr bool logic_s = S1 || S2;
};

}  // namespace flx_csim

template <int W, bool S> class ap_int_base;
template <int W> class ap_int;
template <int W> class ap_uint;

// Reference to bits hi..lo of an ap value (x.range(hi, lo)).
template <int W, bool S>
class ap_range_ref {
  public:
    ap_range_ref(ap_int_base<W, S> *p, int hi, int lo) : p_(p), hi_(hi), lo_(lo) {}
    ap_range_ref(const ap_range_ref &) = default;
    unsigned long long get() const {
        int n = hi_ - lo_ + 1;
        unsigned long long m = n >= 64 ? ~0ull : ((1ull << n) - 1);
        return (p_->bits_ >> lo_) & m;
    }
    operator ap_uint<W>() const { return ap_uint<W>(get()); }
    int to_int() const { return (int)get(); }
    unsigned to_uint() const { return (unsigned)get(); }
    long long to_int64() const { return (long long)get(); }
    unsigned long long to_uint64() const { return get(); }
    int length() const { return hi_ - lo_ + 1; }
    template <int W2, bool S2>
    ap_range_ref &operator=(const ap_int_base<W2, S2> &v) { return set(v.bits_); }
    ap_range_ref &operator=(const ap_range_ref &v) { return set(v.get()); }
    template <class T, class = typename std::enable_if<std::is_integral<T>::value>::type>
    ap_range_ref &operator=(T v) { return set((unsigned long long)v); }

  private:
    ap_range_ref &set(unsigned long long v) {
        int n = hi_ - lo_ + 1;
        unsigned long long m = (n >= 64 ? ~0ull : ((1ull << n) - 1)) << lo_;
        unsigned long long nb = (p_->bits_ & ~m) | ((v << lo_) & m);
        *p_ = ap_int_base<W, S>::from_bits(nb);
        return *this;
    }
    ap_int_base<W, S> *p_;
    int hi_, lo_;
};

// Reference to one bit (x[i]).
template <int W, bool S>
class ap_bit_ref {
  public:
    ap_bit_ref(ap_int_base<W, S> *p, int i) : p_(p), i_(i) {}
    ap_bit_ref(const ap_bit_ref &) = default;
    operator bool() const { return (p_->bits_ >> i_) & 1; }
    ap_bit_ref &operator=(bool v) {
        unsigned long long nb = (p_->bits_ & ~(1ull << i_)) | ((unsigned long long)v << i_);
        *p_ = ap_int_base<W, S>::from_bits(nb);
        return *this;
    }
    ap_bit_ref &operator=(const ap_bit_ref &o) { return *this = (bool)o; }

  private:
    ap_int_base<W, S> *p_;
    int i_;
};

template <int W, bool S>
class ap_int_base {
    static_assert(W >= 1 && W <= 64, "the csim shim supports ap_int/ap_uint widths 1..64");

  public:
    static constexpr unsigned long long mask = W == 64 ? ~0ull : ((1ull << W) - 1);
    typedef typename std::conditional<S, long long, unsigned long long>::type c_type;

    unsigned long long bits_;   // the W-bit pattern, bits above W are zero

    ap_int_base() : bits_(0) {}
    template <class T, class = typename std::enable_if<std::is_integral<T>::value>::type>
    ap_int_base(T v) : bits_((unsigned long long)v & mask) {}
    ap_int_base(double v) : bits_(from_double(v)) {}
    ap_int_base(float v) : bits_(from_double((double)v)) {}
    template <int W2, bool S2>
    ap_int_base(const ap_int_base<W2, S2> &v) : bits_((unsigned long long)(flx_csim::uwide_t)v.wide() & mask) {}
    template <int W2, bool S2>
    ap_int_base(const ap_range_ref<W2, S2> &r) : bits_(r.get() & mask) {}

    static ap_int_base from_bits(unsigned long long b) { ap_int_base r; r.bits_ = b & mask; return r; }
    static ap_int_base from_wide(flx_csim::wide_t v) { return from_bits((unsigned long long)(flx_csim::uwide_t)v); }

    // exact value: the pattern read signed (ap_int) or unsigned (ap_uint)
    flx_csim::wide_t wide() const {
        if (S && ((bits_ >> (W - 1)) & 1)) return (flx_csim::wide_t)bits_ - ((flx_csim::wide_t)1 << W);
        return (flx_csim::wide_t)bits_;
    }

    operator c_type() const { return (c_type)wide(); }
    int to_int() const { return (int)wide(); }
    unsigned to_uint() const { return (unsigned)wide(); }
    long to_long() const { return (long)wide(); }
    long long to_int64() const { return (long long)wide(); }
    unsigned long long to_uint64() const { return (unsigned long long)wide(); }
    double to_double() const { return (double)wide(); }
    float to_float() const { return (float)wide(); }
    static constexpr int length() { return W; }

    ap_range_ref<W, S> range(int hi, int lo) { return ap_range_ref<W, S>(this, hi, lo); }
    ap_int_base<W, false> range(int hi, int lo) const {
        int n = hi - lo + 1;
        unsigned long long m = n >= 64 ? ~0ull : ((1ull << n) - 1);
        return ap_int_base<W, false>::from_bits((bits_ >> lo) & m);
    }
    ap_bit_ref<W, S> operator[](int i) { return ap_bit_ref<W, S>(this, i); }
    bool operator[](int i) const { return (bits_ >> i) & 1; }
    bool get_bit(int i) const { return (bits_ >> i) & 1; }

    template <class T> ap_int_base &operator+=(const T &v) { return *this = ap_int_base(*this + v); }
    template <class T> ap_int_base &operator-=(const T &v) { return *this = ap_int_base(*this - v); }
    template <class T> ap_int_base &operator*=(const T &v) { return *this = ap_int_base(*this * v); }
    template <class T> ap_int_base &operator/=(const T &v) { return *this = ap_int_base(*this / v); }
    template <class T> ap_int_base &operator&=(const T &v) { return *this = ap_int_base(*this & v); }
    template <class T> ap_int_base &operator|=(const T &v) { return *this = ap_int_base(*this | v); }
    template <class T> ap_int_base &operator^=(const T &v) { return *this = ap_int_base(*this ^ v); }
    ap_int_base &operator<<=(int n) { return *this = *this << n; }
    ap_int_base &operator>>=(int n) { return *this = *this >> n; }
    ap_int_base &operator++() { return *this = from_wide(wide() + 1); }
    ap_int_base &operator--() { return *this = from_wide(wide() - 1); }
    ap_int_base operator++(int) { ap_int_base t = *this; ++*this; return t; }
    ap_int_base operator--(int) { ap_int_base t = *this; --*this; return t; }

    ap_int_base<flx_csim::cap64(W + 1), true> operator-() const {
        return ap_int_base<flx_csim::cap64(W + 1), true>::from_wide(-wide());
    }
    ap_int_base operator~() const { return from_bits(~bits_); }
    bool operator!() const { return bits_ == 0; }
    ap_int_base operator<<(int n) const { return n >= 64 ? from_bits(0) : from_bits(bits_ << n); }
    ap_int_base operator>>(int n) const {
        return from_wide(wide() >> (n > 127 ? 127 : n));  // arithmetic on the exact value
    }

  private:
    // truncation toward zero, then modulo 2^W (exact: fmod is exact)
    static unsigned long long from_double(double v) {
        if (!std::isfinite(v)) return 0;
        double t = std::trunc(v);
        t = std::fmod(t, 18446744073709551616.0);  // |t| < 2^64, still integral
        return (unsigned long long)(flx_csim::uwide_t)(flx_csim::wide_t)t & mask;
    }
};

template <int W>
class ap_int : public ap_int_base<W, true> {
  public:
    typedef ap_int_base<W, true> Base;
    ap_int() {}
    ap_int(const ap_int &) = default;
    ap_int &operator=(const ap_int &) = default;
    template <class T> ap_int(const T &v) : Base(v) {}
};

template <int W>
class ap_uint : public ap_int_base<W, false> {
  public:
    typedef ap_int_base<W, false> Base;
    ap_uint() {}
    ap_uint(const ap_uint &) = default;
    ap_uint &operator=(const ap_uint &) = default;
    template <class T> ap_uint(const T &v) : Base(v) {}
};

namespace flx_csim {
// The ap type a C integer operand counts as.
template <class T, bool = std::is_integral<T>::value> struct c_ap {};
template <class T> struct c_ap<T, true> {
    typedef ap_int_base<(int)(sizeof(T) * 8), std::is_signed<T>::value> type;
};
template <> struct c_ap<bool, true> { typedef ap_int_base<1, false> type; };
}  // namespace flx_csim

// ---- ap OP ap, ap OP C-integer, C-integer OP ap
#define FLX_CSIM_BINOP(OP, KIND)                                                               \
    template <int W1, bool S1, int W2, bool S2>                                                \
    inline ap_int_base<flx_csim::rtype<W1, S1, W2, S2>::KIND##_w,                              \
                       flx_csim::rtype<W1, S1, W2, S2>::KIND##_s>                              \
    operator OP(const ap_int_base<W1, S1> &a, const ap_int_base<W2, S2> &b) {                  \
        return ap_int_base<flx_csim::rtype<W1, S1, W2, S2>::KIND##_w,                          \
                           flx_csim::rtype<W1, S1, W2, S2>::KIND##_s>::from_wide(a.wide() OP   \
                                                                                b.wide());     \
    }                                                                                          \
    template <int W, bool S, class T, class C = typename flx_csim::c_ap<T>::type>              \
    inline auto operator OP(const ap_int_base<W, S> &a, T b)->decltype(a OP C(b)) {            \
        return a OP C(b);                                                                      \
    }                                                                                          \
    template <int W, bool S, class T, class C = typename flx_csim::c_ap<T>::type>              \
    inline auto operator OP(T a, const ap_int_base<W, S> &b)->decltype(C(a) OP b) {            \
        return C(a) OP b;                                                                      \
    }
FLX_CSIM_BINOP(+, plus)
FLX_CSIM_BINOP(-, minus)
FLX_CSIM_BINOP(*, mult)
FLX_CSIM_BINOP(/, div)
FLX_CSIM_BINOP(%, mod)
FLX_CSIM_BINOP(&, logic)
FLX_CSIM_BINOP(|, logic)
FLX_CSIM_BINOP(^, logic)
#undef FLX_CSIM_BINOP

// ---- comparisons on exact values
#define FLX_CSIM_CMP(OP)                                                                       \
    template <int W1, bool S1, int W2, bool S2>                                                \
    inline bool operator OP(const ap_int_base<W1, S1> &a, const ap_int_base<W2, S2> &b) {      \
        return a.wide() OP b.wide();                                                           \
    }                                                                                          \
    template <int W, bool S, class T, class C = typename flx_csim::c_ap<T>::type>              \
    inline bool operator OP(const ap_int_base<W, S> &a, T b) { return a.wide() OP C(b).wide(); } \
    template <int W, bool S, class T, class C = typename flx_csim::c_ap<T>::type>              \
    inline bool operator OP(T a, const ap_int_base<W, S> &b) { return C(a).wide() OP b.wide(); }
FLX_CSIM_CMP(==)
FLX_CSIM_CMP(!=)
FLX_CSIM_CMP(<)
FLX_CSIM_CMP(<=)
FLX_CSIM_CMP(>)
FLX_CSIM_CMP(>=)
#undef FLX_CSIM_CMP

// ---- ap OP float / double: integer -> C integer -> floating type
#define FLX_CSIM_FLOP(OP, RET)                                                                 \
    template <int W, bool S>                                                                   \
    inline RET operator OP(const ap_int_base<W, S> &a, float b) {                              \
        return (typename ap_int_base<W, S>::c_type)a.wide() OP b;                              \
    }                                                                                          \
    template <int W, bool S>                                                                   \
    inline RET operator OP(float a, const ap_int_base<W, S> &b) {                              \
        return a OP(typename ap_int_base<W, S>::c_type) b.wide();                              \
    }
FLX_CSIM_FLOP(+, float)
FLX_CSIM_FLOP(-, float)
FLX_CSIM_FLOP(*, float)
FLX_CSIM_FLOP(/, float)
FLX_CSIM_FLOP(<, bool)
FLX_CSIM_FLOP(>, bool)
FLX_CSIM_FLOP(==, bool)
#undef FLX_CSIM_FLOP
#define FLX_CSIM_DBOP(OP, RET)                                                                 \
    template <int W, bool S>                                                                   \
    inline RET operator OP(const ap_int_base<W, S> &a, double b) {                             \
        return (typename ap_int_base<W, S>::c_type)a.wide() OP b;                              \
    }                                                                                          \
    template <int W, bool S>                                                                   \
    inline RET operator OP(double a, const ap_int_base<W, S> &b) {                             \
        return a OP(typename ap_int_base<W, S>::c_type) b.wide();                              \
    }
FLX_CSIM_DBOP(+, double)
FLX_CSIM_DBOP(-, double)
FLX_CSIM_DBOP(*, double)
FLX_CSIM_DBOP(/, double)
#undef FLX_CSIM_DBOP

#endif  // FLX_CSIM_AP_INT_H
