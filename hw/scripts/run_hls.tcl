# run_hls.tcl -- Vitis HLS flow of one FlexLLM kernel: C simulation against the
# golden vectors, C synthesis and RTL co-simulation, for the U280
# (xcu280-fsvh2892-2L-e) at 3.33 ns (300 MHz, the FlexLLM build clock).
#
# usage (from any folder; needs vitis_hls on PATH):
#   vitis_hls -f hw/scripts/run_hls.tcl -tclargs KERNEL GOLDEN_DIR [STEPS] [PROJECT_DIR]
#     KERNEL       a golden kernel name (hw/tops/top_KERNEL.cpp), e.g. gemm_i4_pref
#     GOLDEN_DIR   folder written by `flxemu golden --kernel all --exp flx --out DIR`
#                  (absolute path: csim/cosim run in the project folder)
#     STEPS        comma list of csim, csynth, cosim (default csim,csynth,cosim)
#     PROJECT_DIR  where the Vitis project goes (default hls_prj)
#
# The design is the top `top_KERNEL` (#pragma HLS TOP in hw/tops/top_KERNEL.cpp).
# The testbench is hw_tb (hw/tb + every other top as testbench code) run with
# `--kernel KERNEL GOLDEN_DIR`: it feeds the golden inputs in the hardware's
# beat order and compares every output bit for bit; it returns 0 only on a
# full match, so csim and cosim fail on any mismatch.  The testbench links
# libcjson and zlib (Debian: libcjson-dev zlib1g-dev).
# On this machine the real Vitis headers are used (FLX_HLS_USE_VITIS): the
# csim shim in hw/csim is never compiled here.

if {$argc < 2} {
    puts "usage: vitis_hls -f run_hls.tcl -tclargs KERNEL GOLDEN_DIR \[csim,csynth,cosim\] \[PROJECT_DIR\]"
    exit 2
}
set kernel [lindex $argv 0]
set golden [file normalize [lindex $argv 1]]
set steps [expr {$argc > 2 ? [split [lindex $argv 2] ","] : {csim csynth cosim}}]
set prj [expr {$argc > 3 ? [lindex $argv 3] : "hls_prj"}]

set hw [file dirname [file dirname [file normalize [info script]]]]
set top_src "$hw/tops/top_${kernel}.cpp"
if {![file exists $top_src]} {
    puts "run_hls.tcl: no top for kernel '$kernel' ($top_src missing)"
    exit 2
}
if {![file exists "$golden/manifest.json"]} {
    puts "run_hls.tcl: $golden/manifest.json missing: run flxemu golden --kernel all --exp flx --out $golden"
    exit 2
}

# C++14 like the csim build here; no FMA contraction in C simulation, so
# csim rounds every float operation as the RTL's separate fmul/fadd cores do
# The head top at the golden whole model's 1024-row vocabulary (--layer model)
set cflags "-std=c++14 -DFLX_HLS_USE_VITIS -DFLX_HEAD_VOCAB=1024 -I$hw/kernels -I$hw/tops"
set tbflags "$cflags -ffp-contract=off -I$hw/tb"

open_project -reset "${prj}_${kernel}"
set_top "top_${kernel}"
add_files $top_src -cflags $cflags
foreach f [glob "$hw/tb/*.cpp"] { add_files -tb $f -cflags $tbflags }
foreach f [glob "$hw/tops/top_*.cpp"] {
    if {$f ne $top_src} { add_files -tb $f -cflags $tbflags }
}

open_solution -reset "u280" -flow_target vivado
set_part {xcu280-fsvh2892-2L-e}
create_clock -period 3.33 -name default
# Float semantics: keep the defaults (config_compile -unsafe_math_optimizations
# and -no_signed_zeros off): the reference's operation order, one rounding per
# operator.  Enabling either can change results and break bit-exact cosim.

set tb_args "--kernel $kernel $golden"
if {"csim" in $steps} {
    csim_design -argv $tb_args -ldflags "-lcjson -lz"
}
if {"csynth" in $steps || "cosim" in $steps} {
    csynth_design
}
if {"cosim" in $steps} {
    cosim_design -argv $tb_args -ldflags "-lcjson -lz" -trace_level none
}
exit
