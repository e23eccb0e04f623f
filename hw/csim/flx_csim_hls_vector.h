// flx_csim_hls_vector.h -- C-simulation stand-in for Vitis HLS hls::vector,
// used ONLY when the real Vitis headers are absent (hw/kernels/flx_hls.h).
// docs/hls-types.md §2: a SIMD value type, N elements of T stored contiguously,
// aligned to the smallest power of two >= sizeof(T)*N (capped at 64 bytes
// here, enough for the kernels' lanes), element access with [], element-wise
// + - * / and ==, broadcast construction from one scalar.
#ifndef FLX_CSIM_HLS_VECTOR_H
#define FLX_CSIM_HLS_VECTOR_H

#include <cstddef>

namespace hls {
namespace flx_detail {
constexpr std::size_t pow2_at_least(std::size_t n, std::size_t p = 1) {
    return p >= n ? p : pow2_at_least(n, p * 2);
}
constexpr std::size_t vec_align(std::size_t bytes) {
    return pow2_at_least(bytes) > 64 ? 64 : pow2_at_least(bytes);
}
}  // namespace flx_detail

template <class T, std::size_t N>
class alignas(flx_detail::vec_align(sizeof(T) * N)) vector {
    static_assert(N > 0, "hls::vector needs at least one element");

  public:
    vector() : d_() {}
    vector(const T &v) { for (std::size_t i = 0; i < N; i++) d_[i] = v; }  // broadcast
    T &operator[](std::size_t i) { return d_[i]; }
    const T &operator[](std::size_t i) const { return d_[i]; }
    static constexpr std::size_t size() { return N; }

    vector &operator+=(const vector &o) { for (std::size_t i = 0; i < N; i++) d_[i] = d_[i] + o.d_[i]; return *this; }
    vector &operator-=(const vector &o) { for (std::size_t i = 0; i < N; i++) d_[i] = d_[i] - o.d_[i]; return *this; }
    vector &operator*=(const vector &o) { for (std::size_t i = 0; i < N; i++) d_[i] = d_[i] * o.d_[i]; return *this; }
    vector &operator/=(const vector &o) { for (std::size_t i = 0; i < N; i++) d_[i] = d_[i] / o.d_[i]; return *this; }
    friend vector operator+(vector a, const vector &b) { return a += b; }
    friend vector operator-(vector a, const vector &b) { return a -= b; }
    friend vector operator*(vector a, const vector &b) { return a *= b; }
    friend vector operator/(vector a, const vector &b) { return a /= b; }
    friend bool operator==(const vector &a, const vector &b) {
        for (std::size_t i = 0; i < N; i++) if (!(a.d_[i] == b.d_[i])) return false;
        return true;
    }
    friend bool operator!=(const vector &a, const vector &b) { return !(a == b); }

  private:
    T d_[N];
};

}  // namespace hls

#endif  // FLX_CSIM_HLS_VECTOR_H
