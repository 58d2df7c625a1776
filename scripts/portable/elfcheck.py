"""elfcheck.py - what the ELF files below a directory need from the node.

    python3 scripts/portable/elfcheck.py [--static] [--max-glibc 2.17] DIR...

Reads every ELF file's headers itself (no binutils needed): its program
interpreter (PT_INTERP), the libraries it names (DT_NEEDED) and the symbol
versions it requires (.gnu.version_r: GLIBC_2.18, ...). Prints one line
per ELF file and exits 1 when

  --static           a file has an interpreter, a dynamic section or a
                     versioned symbol requirement (it needs a loader and
                     libraries from the node);
  --max-glibc X.Y    a file requires a GLIBC_ version newer than X.Y.

Only the standard library (build.sh runs it with the bundle's own static
interpreter; the tests import it).
"""

import os
import struct
import sys

PT_INTERP, PT_DYNAMIC = 3, 2
DT_NEEDED, DT_STRTAB, DT_STRSZ = 1, 5, 10
SHT_GNU_VERNEED = 0x6FFFFFFE


class ElfInfo:
    def __init__(self, path, interp, needed, versions, dynamic):
        self.path = path
        self.interp = interp          # str or None
        self.needed = needed          # [library names]
        self.versions = versions      # {library: {version names}}
        self.dynamic = dynamic        # has a PT_DYNAMIC segment

    @property
    def glibc_versions(self):
        out = set()
        for names in self.versions.values():
            out |= {n for n in names if n.startswith("GLIBC_2.")}
        return out


def _cstr(data, off):
    end = data.index(b"\0", off)
    return data[off:end].decode("ascii", "replace")


def read_elf(path):
    """ElfInfo of `path`, or None when it is no 64-bit little-endian ELF."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    (e_phoff, e_shoff) = struct.unpack_from("<QQ", data, 0x20)
    (e_phentsize, e_phnum, e_shentsize, e_shnum) = struct.unpack_from("<HHHH", data, 0x36)
    interp, dyn_seg = None, None
    for i in range(e_phnum):
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, e_phoff + i * e_phentsize)
        if p_type == PT_INTERP:
            interp = data[p_offset:p_offset + p_filesz].rstrip(b"\0").decode("ascii", "replace")
        elif p_type == PT_DYNAMIC:
            dyn_seg = (p_offset, p_filesz)
    sections = []
    for i in range(e_shnum):
        (_name, sh_type, _flags, sh_addr, sh_offset, sh_size, sh_link,
         sh_info) = struct.unpack_from("<IIQQQQII", data, e_shoff + i * e_shentsize)
        sections.append((sh_type, sh_addr, sh_offset, sh_size, sh_link, sh_info))
    needed = []
    if dyn_seg:
        entries = []
        off, size = dyn_seg
        for j in range(size // 16):
            tag, val = struct.unpack_from("<qQ", data, off + j * 16)
            if tag == 0:
                break
            entries.append((tag, val))
        strtab_addr = next((v for t, v in entries if t == DT_STRTAB), None)
        strtab_off = None
        for sh_type, sh_addr, sh_offset, sh_size, *_ in sections:
            if strtab_addr is not None and sh_addr == strtab_addr and sh_size:
                strtab_off = sh_offset
        if strtab_off is not None:
            needed = [_cstr(data, strtab_off + v) for t, v in entries if t == DT_NEEDED]
    versions = {}
    for sh_type, _addr, sh_offset, sh_size, sh_link, sh_info in sections:
        if sh_type != SHT_GNU_VERNEED:
            continue
        strtab_off = sections[sh_link][2]
        off = sh_offset
        for _ in range(sh_info):
            _ver, cnt, vn_file, vn_aux, vn_next = struct.unpack_from("<HHIII", data, off)
            lib = _cstr(data, strtab_off + vn_file)
            aux = off + vn_aux
            for _ in range(cnt):
                _hash, _flags, _other, vna_name, vna_next = struct.unpack_from("<IHHII", data, aux)
                versions.setdefault(lib, set()).add(_cstr(data, strtab_off + vna_name))
                aux += vna_next
            if not vn_next:
                break
            off += vn_next
    return ElfInfo(path, interp, needed, versions, dyn_seg is not None)


def elf_files(top):
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            info = read_elf(path)
            if info is not None:
                yield info


def _version_key(name):
    return tuple(int(x) for x in name.split("_", 1)[1].split(".") if x.isdigit())


def problems(info, static=False, max_glibc=None):
    out = []
    if static:
        if info.interp:
            out.append(f"program interpreter {info.interp}")
        if info.dynamic:
            needs = f" (needs {', '.join(info.needed)})" if info.needed else ""
            out.append("dynamic section" + needs)
        if info.versions:
            symbols = sorted(set().union(*info.versions.values()))
            out.append("versioned symbols " + ", ".join(symbols))
    if max_glibc:
        limit = _version_key("GLIBC_" + max_glibc)
        newer = sorted((v for v in info.glibc_versions if _version_key(v) > limit),
                       key=_version_key)
        if newer:
            out.append("needs " + ", ".join(newer))
    return out


def main(argv):
    static, max_glibc, dirs = False, None, []
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--static":
            static = True
        elif arg == "--max-glibc":
            max_glibc = args.pop(0)
        else:
            dirs.append(arg)
    if not dirs:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    bad = count = 0
    for top in dirs:
        for info in elf_files(top):
            count += 1
            found = problems(info, static, max_glibc)
            glibc = max(info.glibc_versions, key=_version_key, default="-")
            state = "static" if not (info.interp or info.dynamic) else f"dynamic, newest {glibc}"
            print(f"elfcheck: {os.path.relpath(info.path, top)}: {state}"
                  + (": " + "; ".join(found) if found else ""))
            bad += bool(found)
    if not count:
        print("elfcheck: no ELF file found", file=sys.stderr)
        return 1
    if bad:
        print(f"elfcheck: {bad} of {count} ELF file(s) would need the node's libraries",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
