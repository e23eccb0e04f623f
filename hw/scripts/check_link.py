#!/usr/bin/env python3
"""Consistency of the v++ link configurations with the HLS tops.

For every top in hw/tops/*.cpp with m_axi ports (#pragma HLS INTERFACE
mode = m_axi port = P) and every link configuration hw/link/*.cfg:
  * a top with m_axi ports is instantiated (nk=TOP:N:INST) by some cfg;
  * every m_axi port of an instantiated top has an sp=INST.PORT:BANK line;
  * every sp= line names an instance of the cfg and an m_axi port of its top;
  * each cfg names a platform.
Prints one line per problem and exits 1, else prints a summary and exits 0.
Usage: check_link.py [HW_DIR]   (default: the hw/ folder above this script)
"""
import glob
import os
import re
import sys


def tops(hw):
    """top name -> list of m_axi ports"""
    out = {}
    for path in sorted(glob.glob(os.path.join(hw, "tops", "*.cpp"))):
        text = open(path, encoding="utf-8").read()
        m = re.search(r"#pragma\s+HLS\s+TOP\s+name\s*=\s*(\w+)", text)
        if not m:
            continue
        ports = re.findall(r"#pragma\s+HLS\s+INTERFACE\s+mode\s*=\s*m_axi\s+port\s*=\s*(\w+)", text)
        out[m.group(1)] = ports
    return out


def check(hw):
    problems = []
    all_tops = tops(hw)
    axi_tops = {t: p for t, p in all_tops.items() if p}
    cfgs = sorted(glob.glob(os.path.join(hw, "link", "*.cfg")))
    if not cfgs:
        problems.append(f"{hw}/link: no .cfg link configuration")
    n_sp = 0
    used = set()
    for cfg in cfgs:
        name = os.path.relpath(cfg, os.path.dirname(hw))
        lines = [l.split("#", 1)[0].strip() for l in open(cfg, encoding="utf-8")]
        if not any(l.startswith("platform=") and len(l) > 9 for l in lines):
            problems.append(f"{name}: no platform=")
        inst = {}
        for l in lines:
            m = re.fullmatch(r"nk=(\w+):(\d+):([\w.]+)", l)
            if m:
                for i in m.group(3).split("."):
                    inst[i] = m.group(1)
        used.update(inst.values())
        mapped = set()
        for l in lines:
            if not l.startswith("sp="):
                continue
            m = re.fullmatch(r"sp=([\w]+)\.(\w+):(\S+)", l)
            if not m:
                problems.append(f"{name}: malformed line '{l}'")
                continue
            i, port, _ = m.groups()
            n_sp += 1
            if i not in inst:
                problems.append(f"{name}: '{l}' names instance {i}, which no nk= line creates")
            elif port not in all_tops.get(inst[i], []):
                problems.append(f"{name}: '{l}': {inst[i]} has no m_axi port {port}")
            mapped.add((i, port))
        for i, t in inst.items():
            if t not in all_tops:
                problems.append(f"{name}: nk= names {t}, which no hw/tops/*.cpp defines (#pragma HLS TOP)")
                continue
            for port in all_tops[t]:
                if (i, port) not in mapped:
                    problems.append(f"{name}: port {port} of {t} (instance {i}) has no sp= line")
    for t in sorted(axi_tops):
        if t not in used:
            problems.append(f"{hw}/link: top {t} (m_axi ports) is instantiated by no link configuration")
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"check_link: {len(cfgs)} link configurations, {len(axi_tops)} tops with m_axi ports "
          f"({sum(len(p) for p in axi_tops.values())} ports), {n_sp} sp= lines: consistent")
    return 0


if __name__ == "__main__":
    hw = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    sys.exit(check(os.path.normpath(hw)))
