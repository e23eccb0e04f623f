# export_xo.tcl -- synthesize a system top (one with m_axi ports, e.g.
# top_layer_decode) for the Vitis flow and export it as a kernel object
# (.xo) for `v++ -l` (hw/scripts/build.sh drives it).
#   vitis_hls -f hw/scripts/export_xo.tcl -tclargs KERNEL PART OUT_DIR [VOCAB]
# KERNEL: hw/tops/top_KERNEL.cpp; PART: e.g. xcu280-fsvh2892-2L-e; VOCAB:
# the head top's vocabulary rows (FLX_HEAD_VOCAB, default 131072 =
# Llama-3.2-1B's 128,256 padded; a multiple of 1024).
if {$argc < 3} {
    puts "usage: vitis_hls -f export_xo.tcl -tclargs KERNEL PART OUT_DIR"
    exit 2
}
set kernel [lindex $argv 0]
set part [lindex $argv 1]
set out [file normalize [lindex $argv 2]]
set vocab [expr {$argc > 3 ? [lindex $argv 3] : 131072}]
set hw [file dirname [file dirname [file normalize [info script]]]]
set cflags "-std=c++14 -DFLX_HLS_USE_VITIS -DFLX_HEAD_VOCAB=$vocab -I$hw/kernels -I$hw/tops"
open_project -reset "$out/xo_prj_${kernel}"
set_top "top_${kernel}"
add_files "$hw/tops/top_${kernel}.cpp" -cflags $cflags
open_solution -reset "sol" -flow_target vitis
set_part $part
create_clock -period 3.33 -name default
csynth_design
export_design -format xo -output "$out/top_${kernel}.xo"
exit
