//! Host tests of the guest runtime's pure parsers (guests/src/rt: little-endian fields,
//! both multiboot memory-map layouts, the multiboot2 tags, free-range arithmetic, command
//! line words, the CPUs of the MADT and the MP table; and the fixtures, which `matrix`
//! compiles). The guests crate builds only
//! for the bare-metal target, so these files are compiled here as well, unchanged (the
//! tests use part of their API).
#![allow(dead_code)]

#[path = "../../guests/src/rt/args.rs"]
mod args;
#[path = "../../guests/src/rt/bytes.rs"]
mod bytes;
#[path = "../../guests/src/rt/cpu_list.rs"]
mod cpu_list;
#[path = "../../guests/src/rt/mb2_tags.rs"]
mod mb2_tags;
#[path = "../../guests/src/rt/memmap.rs"]
mod memmap;
#[path = "../../guests/src/rt/ranges.rs"]
mod ranges;

use crate::matrix::fixtures;
use memmap::{contiguous_end, Entries, Layout, MmapEntry};

fn le32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn le64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

/// A tag of `kind` with `body`, padded to 8 bytes.
fn tag(v: &mut Vec<u8>, kind: u32, body: &[u8]) {
    le32(v, kind);
    le32(v, 8 + body.len() as u32);
    v.extend_from_slice(body);
    v.resize(v.len().next_multiple_of(8), 0);
}

/// A multiboot2 information structure: command line, a module, basic memory, a memory
/// map of two entries, the end tag; `total_size` set.
fn mb2_info() -> Vec<u8> {
    let mut v = vec![0u8; 8];
    tag(&mut v, mb2_tags::CMDLINE, b"a=1 b\0");
    let mut module = Vec::new();
    le32(&mut module, 0x20_0000);
    le32(&mut module, 0x20_0100);
    module.extend_from_slice(b"index=0\0");
    tag(&mut v, mb2_tags::MODULE, &module);
    let mut mem = Vec::new();
    le32(&mut mem, 639);
    le32(&mut mem, 7168);
    tag(&mut v, mb2_tags::BASIC_MEMINFO, &mem);
    let mut mmap = Vec::new();
    le32(&mut mmap, 24);
    le32(&mut mmap, 0);
    for (base, len, kind) in [(0u64, 0x9_fc00u64, 1u32), (0x10_0000, 0x70_0000, 1)] {
        le64(&mut mmap, base);
        le64(&mut mmap, len);
        le32(&mut mmap, kind);
        le32(&mut mmap, 0);
    }
    tag(&mut v, mb2_tags::MMAP, &mmap);
    tag(&mut v, mb2_tags::END, &[]);
    let total = v.len() as u32;
    v[..4].copy_from_slice(&total.to_le_bytes());
    v
}

#[test]
fn le_fields_read_zero_past_the_end() {
    let b = [1, 0, 0, 0, 2, 0, 0, 0, 0xff];
    assert_eq!(bytes::u32_at(&b, 4), 2);
    assert_eq!(bytes::u64_at(&b, 0), 0x2_0000_0001);
    assert_eq!(bytes::u32_at(&b, 6), 0);
    assert_eq!(bytes::u32_at(&b, usize::MAX), 0);
}

#[test]
fn mb2_tags_parse() {
    let info = mb2_info();
    assert_eq!(mb2_tags::check(&info), Ok(()));
    let kinds: Vec<u32> = mb2_tags::tags(&info).map(|t| t.kind).collect();
    assert_eq!(kinds, [1, 3, 4, 6]);
    let cmdline = mb2_tags::find(&info, mb2_tags::CMDLINE).and_then(mb2_tags::string);
    assert_eq!(cmdline, Some("a=1 b"));
    let module = mb2_tags::find(&info, mb2_tags::MODULE).and_then(mb2_tags::module);
    assert_eq!(module, Some((0x20_0000, 0x20_0100, "index=0")));
    let mem = mb2_tags::find(&info, mb2_tags::BASIC_MEMINFO).and_then(mb2_tags::basic_meminfo);
    assert_eq!(mem, Some((639, 7168)));
    let (size, version, entries) = mb2_tags::mmap(mb2_tags::find(&info, mb2_tags::MMAP).unwrap());
    assert_eq!((size, version), (24, 0));
    let entries: Vec<MmapEntry> = entries.collect();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].base, 0x10_0000);
    assert_eq!(
        contiguous_end(entries.iter().copied(), 0x10_0000),
        0x80_0000
    );
    assert_eq!(mb2_tags::find(&info, mb2_tags::ACPI_OLD), None);
}

#[test]
fn mb2_malformed_structures_are_refused() {
    let good = mb2_info();
    let mut bad = good.clone();
    bad[0] += 8;
    bad.extend_from_slice(&[0; 8]);
    assert!(mb2_tags::check(&bad).is_err(), "bytes after the end tag");
    let mut bad = good.clone();
    bad[..4].copy_from_slice(&4000u32.to_le_bytes());
    assert!(
        mb2_tags::check(&bad).is_err(),
        "total_size is not the length"
    );
    // The first tag (at 8) claims more bytes than there are: no tags, and an error.
    let mut bad = good.clone();
    bad[12..16].copy_from_slice(&0x1000u32.to_le_bytes());
    assert!(mb2_tags::check(&bad).is_err());
    assert_eq!(mb2_tags::tags(&bad).count(), 0);
    // No end tag: the last 8 bytes become part of a longer mmap tag.
    let mut bad = good[..good.len() - 8].to_vec();
    let total = bad.len() as u32;
    bad[..4].copy_from_slice(&total.to_le_bytes());
    assert_eq!(mb2_tags::check(&bad), Err("no end tag"));
    // A string without its NUL is no string.
    assert_eq!(mb2_tags::string(b"abc"), None);
}

#[test]
fn mmap_layouts() {
    // Multiboot1: size-prefixed; a size of 24 carries 4 bytes more that are skipped.
    let mut v = Vec::new();
    for (size, base) in [(20u32, 0u64), (24, 0x10_0000), (20, 0x30_0000)] {
        le32(&mut v, size);
        le64(&mut v, base);
        le64(&mut v, 0x1000);
        le32(&mut v, 1);
        v.resize(v.len() + size as usize - 20, 0xee);
    }
    le32(&mut v, 20);
    le64(&mut v, 0x20_0000);
    let got: Vec<u64> = Entries::new(&v, Layout::SizePrefixed)
        .map(|e| e.base)
        .collect();
    assert_eq!(
        got,
        [0, 0x10_0000, 0x30_0000],
        "the truncated fourth is not read"
    );
    // Multiboot2 with an entry size too small for an entry: nothing.
    assert_eq!(Entries::new(&[0; 64], Layout::Stride(16)).count(), 0);
    assert_eq!(Entries::new(&[0; 64], Layout::Stride(32)).count(), 2);
}

#[test]
fn contiguous_ram_merges_adjacent_entries_and_stops_at_holes() {
    let e = |base, len, kind| MmapEntry { base, len, kind };
    let map = [
        e(0x10_0000, 0x10_0000, 1),
        e(0x20_0000, 0x10_0000, 1),
        e(0x30_0000, 0x1000, 2),
        e(0x40_0000, 0x1000, 1),
    ];
    assert_eq!(contiguous_end(map.iter().copied(), 0x10_0000), 0x30_0000);
    assert_eq!(contiguous_end(map.iter().copied(), 0x30_0000), 0x30_0000);
    assert_eq!(contiguous_end(map.iter().copied(), 0), 0);
}

#[test]
fn free_ranges_are_the_gaps_between_used_ones() {
    let mut used = ranges::Used::default();
    used.add(0x5000..0x6000);
    used.add(0x1000..0x2000);
    used.add(0x1800..0x3000);
    used.add(0x9000..0x9000);
    let gaps: Vec<_> = used.gaps(0..0x8000).collect();
    assert_eq!(gaps, [0..0x1000, 0x3000..0x5000, 0x6000..0x8000]);
    let gaps: Vec<_> = used
        .gaps(0x2000..0x5800)
        .map(|r| (r.start, r.end))
        .collect();
    assert_eq!(gaps, [(0x3000, 0x5000)]);
    assert!(used.overlaps(&(0x2fff..0x4000)));
    assert!(!used.overlaps(&(0x3000..0x5000)));
    // Used ranges beyond or before `within` change nothing.
    let gaps: Vec<_> = used
        .gaps(0x7000..0x8000)
        .map(|r| (r.start, r.end))
        .collect();
    assert_eq!(gaps, [(0x7000, 0x8000)]);
}

#[test]
fn too_many_used_ranges_leave_nothing_free() {
    let mut used = ranges::Used::default();
    for i in 0..=ranges::MAX_USED as u64 {
        used.add(i * 0x2000..i * 0x2000 + 0x1000);
    }
    assert_eq!(used.gaps(0..u64::MAX).count(), 0);
}

#[test]
fn words_after_an_optional_path() {
    let ok = args::is_words_after_path;
    assert!(ok("a=1 b=2", "f.txt", "a=1 b=2"));
    assert!(ok("/guests/f.txt a=1 b=2", "f.txt", "a=1 b=2"));
    assert!(ok("f.txt a=1", "f.txt", "a=1"));
    assert!(!ok("/guests/xf.txt a=1", "f.txt", "a=1"));
    assert!(!ok("/guests/g.txt a=1", "f.txt", "a=1"));
    assert!(!ok("/guests/f.txt a=1 b=2", "f.txt", "a=1"));
    // Any path for the kernel's own command line, but not a key=value word.
    assert!(ok("/boot/k a=1", "", "a=1"));
    assert!(!ok("x=y a=1", "", "a=1"));
    assert_eq!(args::arg("a=1 bb=2 b=3", "b"), Some("3"));
}

#[test]
fn fixtures_are_the_files_in_guests_modules() {
    let root = crate::workspace_root();
    for f in fixtures::MODULES {
        let on_disk = std::fs::read(crate::matrix::fixture_file(&root, f.file)).unwrap();
        assert_eq!(on_disk, f.bytes, "{}", f.file);
        assert!(
            f.args.split_whitespace().all(|w| w.contains('=')),
            "the matrix writes the words as keys: {}",
            f.args
        );
    }
    assert!(
        fixtures::MODULES[1].bytes.len() > 4096,
        "one spans two pages"
    );
}

/// A fake PC's low 1 MiB (plus a little) for the CPU-table parsers.
struct Machine(Vec<u8>);

impl Machine {
    fn put(&mut self, at: u64, bytes: &[u8]) {
        self.0[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
    }

    fn list(
        &self,
        f: fn(cpu_list::Mem) -> Result<cpu_list::CpuList, &'static str>,
    ) -> Result<cpu_list::CpuList, &'static str> {
        let mem = |a: u64, l: usize| self.0.get(a as usize..(a as usize).checked_add(l)?);
        f(&mem)
    }
}

/// Sets byte `at` of `b` so that all of `b` sums to 0.
fn checksum(b: &mut [u8], at: usize) {
    b[at] = 0;
    b[at] = 0u8.wrapping_sub(b.iter().fold(0u8, |s, &x| s.wrapping_add(x)));
}

/// An ACPI table: the 36-byte header, then `body`.
fn acpi(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut t = sig.to_vec();
    le32(&mut t, 36 + body.len() as u32);
    t.resize(36, 0);
    t[8] = 1;
    t.extend_from_slice(body);
    checksum(&mut t, 9);
    t
}

/// A MADT: Local APIC entries (id, enabled), then an I/O APIC (id 8) and an x2APIC entry
/// (id 0x100, enabled).
fn madt(cpus: &[(u8, bool)]) -> Vec<u8> {
    let mut b = Vec::new();
    le32(&mut b, 0xfee0_0000);
    le32(&mut b, 1);
    for (uid, &(id, on)) in cpus.iter().enumerate() {
        b.extend_from_slice(&[0, 8, uid as u8, id]);
        le32(&mut b, u32::from(on));
    }
    b.extend_from_slice(&[1, 12, 8, 0]);
    le32(&mut b, 0xfec0_0000);
    le32(&mut b, 0);
    b.extend_from_slice(&[9, 16, 0, 0]);
    le32(&mut b, 0x100);
    le32(&mut b, 1);
    le32(&mut b, 9);
    acpi(b"APIC", &b)
}

fn rsdp(revision: u8, rsdt: u32, xsdt: u64) -> Vec<u8> {
    let mut r = b"RSD PTR ".to_vec();
    r.extend_from_slice(&[0; 7]);
    r.push(revision);
    le32(&mut r, rsdt);
    le32(&mut r, 36);
    le64(&mut r, xsdt);
    r.extend_from_slice(&[0; 4]);
    checksum(&mut r[..20], 8);
    checksum(&mut r, 32);
    r
}

/// An MP configuration table: processors (id, flags), a bus, an I/O APIC (id 8).
fn mp_config(cpus: &[(u8, u8)]) -> Vec<u8> {
    let mut t = b"PCMP".to_vec();
    t.resize(44, 0);
    let mut n = 0u16;
    for &(id, flags) in cpus {
        t.extend_from_slice(&[0, id, 0x14, flags]);
        t.resize(t.len() + 16, 0);
        n += 1;
    }
    t.extend_from_slice(&[1, 0, b'I', b'S', b'A', 0, 0, 0]);
    t.extend_from_slice(&[2, 8, 0x11, 1]);
    le32(&mut t, 0xfec0_0000);
    n += 2;
    let len = t.len() as u16;
    t[4..6].copy_from_slice(&len.to_le_bytes());
    t[6] = 4;
    t[34..36].copy_from_slice(&n.to_le_bytes());
    checksum(&mut t, 7);
    t
}

/// EBDA at 0x9FC00 holding the MP floating pointer (table at 0x9FD00), the RSDP at
/// 0xF0010, RSDT at 0x80000 -> a dummy FACP and the MADT at 0x82000.
fn pc() -> Machine {
    let mut m = Machine(vec![0; 0x10_0000 + 0x1000]);
    m.put(0x40e, &0x9fc0u16.to_le_bytes());
    m.put(0x413, &639u16.to_le_bytes());
    let mut fp = b"_MP_".to_vec();
    le32(&mut fp, 0x9_fd00);
    fp.extend_from_slice(&[1, 4, 0, 0, 0, 0, 0, 0]);
    checksum(&mut fp, 10);
    m.put(0x9_fc00, &fp);
    m.put(0x9_fd00, &mp_config(&[(0, 3), (2, 1), (7, 0)]));
    m.put(0xf_0010, &rsdp(0, 0x8_0000, 0));
    let mut entries = Vec::new();
    le32(&mut entries, 0x8_1000);
    le32(&mut entries, 0x8_2000);
    m.put(0x8_0000, &acpi(b"RSDT", &entries));
    m.put(0x8_1000, &acpi(b"FACP", &[0; 8]));
    m.put(0x8_2000, &madt(&[(0, true), (2, true), (5, false)]));
    m
}

#[test]
fn cpus_of_the_madt_and_the_mp_table() {
    let m = pc();
    let l = m.list(cpu_list::find).unwrap();
    assert_eq!(l.source, cpu_list::Source::Madt);
    assert_eq!(
        (l.at, l.ids(), l.ioapic_id),
        (0x8_2000, &[0, 2, 0x100][..], Some(8))
    );
    assert!(l.distinct());
    let mp = m.list(cpu_list::from_mp_table).unwrap();
    assert_eq!(mp.source, cpu_list::Source::MpTable);
    assert_eq!(
        (mp.at, mp.ids(), mp.ioapic_id),
        (0x9_fd00, &[0, 2][..], Some(8))
    );
}

#[test]
fn a_bad_madt_leaves_the_mp_table() {
    let mut m = pc();
    m.0[0x8_2000 + 50] ^= 1;
    assert_eq!(
        m.list(cpu_list::from_madt).unwrap_err(),
        "no MADT (APIC) in the RSDT/XSDT"
    );
    assert_eq!(
        m.list(cpu_list::find).unwrap().source,
        cpu_list::Source::MpTable
    );
    // An RSDP off a 16-byte boundary is not found.
    let mut m = pc();
    let r = m.0[0xf_0010..0xf_0010 + 36].to_vec();
    m.put(0xf_0010, &[0; 36]);
    m.put(0xf_0018, &r);
    assert_eq!(
        m.list(cpu_list::from_madt).unwrap_err(),
        "no RSDP with a valid checksum"
    );
    // A BDA of zeros (no EBDA segment, no base memory size): the last KiB below 640 KiB.
    m.put(0x400, &[0; 0x20]);
    assert_eq!(m.list(cpu_list::find).unwrap().at, 0x9_fd00);
    // Neither table.
    m.put(0x9_fc00, &[0; 16]);
    assert!(m.list(cpu_list::find).is_err());
}

#[test]
fn the_xsdt_wins_over_the_rsdt_when_valid() {
    let mut m = pc();
    m.put(0x8_4000, &madt(&[(3, true), (3, true)]));
    let mut entries = Vec::new();
    le64(&mut entries, 0x8_4000);
    m.put(0x8_3000, &acpi(b"XSDT", &entries));
    m.put(0xf_0010, &rsdp(2, 0x8_0000, 0x8_3000));
    let l = m.list(cpu_list::from_madt).unwrap();
    assert_eq!((l.at, l.ids()), (0x8_4000, &[3, 3, 0x100][..]));
    assert!(!l.distinct(), "APIC ID 3 twice");
    m.0[0x8_3000 + 36] ^= 1;
    assert_eq!(m.list(cpu_list::from_madt).unwrap().at, 0x8_2000);
}

#[test]
fn cpus_beyond_the_list_are_counted() {
    let mut m = pc();
    let many: Vec<(u8, bool)> = (0..40).map(|i| (i, true)).collect();
    m.put(0x8_2000, &madt(&many));
    let l = m.list(cpu_list::from_madt).unwrap();
    assert_eq!((l.ids().len(), l.count()), (cpu_list::MAX, 41));
    // The MP table's processor entries past its entry count are not read.
    let mut t = mp_config(&[(0, 3), (1, 1)]);
    t[34] = 1;
    checksum(&mut t, 7);
    assert_eq!(cpu_list::mp_cpus(&t, 0).ids(), [0]);
}
