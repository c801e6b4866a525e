//! A reader for BTF, the kernel's description of its own types
//! (`/sys/kernel/btf/vmlinux`): just enough to find a function by name
//! and the offset and size of a member of a named struct. It takes bytes
//! and does no I/O; one pass indexes where each type starts, and the
//! lookups walk that index.
//!
//! The layout (the kernel's `include/uapi/linux/btf.h`): a header, then
//! a type section of variable-length records numbered from 1 (id 0 is
//! `void`), then a string section of NUL-terminated names that records
//! point into by offset. Everything is in the byte order of the machine
//! that wrote it, which for the running kernel's BTF is ours.

use std::fmt;

/// The magic number at the start, in the writer's byte order.
const MAGIC: u16 = 0xeb9f;
/// The header this reader knows: magic, version, flags, hdr_len, then
/// four u32 (type_off, type_len, str_off, str_len).
const HEADER_LEN: usize = 24;
/// Each type record starts with name_off, info and size-or-type.
const TYPE_HEADER_LEN: usize = 12;
/// How many typedefs, qualifiers or arrays deep a type may be looked
/// through: the kernel's own limit (`MAX_RESOLVE_DEPTH`). Longer chains
/// are loops in bad data.
const MAX_DEPTH: usize = 32;
/// How many struct members one [`Btf::member`] lookup may visit, in the
/// struct and the anonymous parts inside it: task_struct, the largest,
/// has a few hundred.
const MEMBER_BUDGET: usize = 100_000;

/// The kinds of type this reader looks at or must step over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An integer (or char, or bool).
    Int,
    /// A pointer.
    Ptr,
    /// An array.
    Array,
    /// A struct.
    Struct,
    /// A union.
    Union,
    /// An enum of at most 32-bit values.
    Enum,
    /// A forward declaration.
    Fwd,
    /// A typedef.
    Typedef,
    /// `volatile`.
    Volatile,
    /// `const`.
    Const,
    /// `restrict`.
    Restrict,
    /// A function (its name, and its prototype as its type).
    Func,
    /// A function's prototype.
    FuncProto,
    /// A variable.
    Var,
    /// A data section.
    Datasec,
    /// A floating point number.
    Float,
    /// An annotation on a declaration.
    DeclTag,
    /// An annotation on a pointer's target.
    TypeTag,
    /// An enum of 64-bit values.
    Enum64,
}

impl Kind {
    fn from_code(code: u32) -> Option<Kind> {
        Some(match code {
            1 => Kind::Int,
            2 => Kind::Ptr,
            3 => Kind::Array,
            4 => Kind::Struct,
            5 => Kind::Union,
            6 => Kind::Enum,
            7 => Kind::Fwd,
            8 => Kind::Typedef,
            9 => Kind::Volatile,
            10 => Kind::Const,
            11 => Kind::Restrict,
            12 => Kind::Func,
            13 => Kind::FuncProto,
            14 => Kind::Var,
            15 => Kind::Datasec,
            16 => Kind::Float,
            17 => Kind::DeclTag,
            18 => Kind::TypeTag,
            19 => Kind::Enum64,
            _ => return None,
        })
    }

    /// Bytes that follow the 12-byte record header, for `vlen` entries.
    fn trailer_len(self, vlen: usize) -> usize {
        match self {
            Kind::Int | Kind::Var | Kind::DeclTag => 4,
            Kind::Array => 12,
            Kind::Struct | Kind::Union | Kind::Datasec | Kind::Enum64 => 12 * vlen,
            Kind::Enum | Kind::FuncProto => 8 * vlen,
            Kind::Ptr
            | Kind::Fwd
            | Kind::Typedef
            | Kind::Volatile
            | Kind::Const
            | Kind::Restrict
            | Kind::Func
            | Kind::Float
            | Kind::TypeTag => 0,
        }
    }
}

/// Why bytes are not BTF this reader can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BtfError {
    /// Shorter than the header says or than a header at all.
    Truncated,
    /// Not BTF: the magic number is wrong.
    BadMagic,
    /// BTF written in the other byte order.
    OtherByteOrder,
    /// A header version or length this reader does not know.
    UnsupportedHeader,
    /// The type or string section lies outside the data.
    BadSection,
    /// Type `id` has a kind this reader cannot step over.
    UnknownKind {
        /// The type's id.
        id: u32,
        /// The kind's number.
        kind: u32,
    },
    /// Type `id` runs past the end of the type section.
    TruncatedType {
        /// The type's id.
        id: u32,
    },
}

impl fmt::Display for BtfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BtfError::Truncated => f.write_str("the data ends early"),
            BtfError::BadMagic => f.write_str("not BTF (bad magic number)"),
            BtfError::OtherByteOrder => f.write_str("BTF of the other byte order"),
            BtfError::UnsupportedHeader => f.write_str("a BTF header of an unknown version"),
            BtfError::BadSection => f.write_str("a section outside the data"),
            BtfError::UnknownKind { id, kind } => write!(f, "type {id} has unknown kind {kind}"),
            BtfError::TruncatedType { id } => write!(f, "type {id} runs past its section"),
        }
    }
}

impl std::error::Error for BtfError {}

/// One type record, as it lies in the type section.
#[derive(Debug, Clone, Copy)]
struct TypeRecord<'a> {
    kind: Kind,
    kind_flag: bool,
    /// The size of a sized type, or the type an alias or pointer refers to.
    size_or_type: u32,
    /// The bytes after the record's header.
    trailer: &'a [u8],
}

/// A member of a struct, found by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Bytes from the start of the outermost struct searched.
    pub offset: u32,
    /// The member's type, as declared (before typedefs are looked through).
    pub type_id: u32,
}

/// Parsed BTF: the sections and where each type starts.
pub struct Btf<'a> {
    types: &'a [u8],
    strings: &'a [u8],
    /// `starts[id - 1]`: where type `id` starts in `types`.
    starts: Vec<u32>,
}

impl<'a> Btf<'a> {
    /// Checks the header and indexes every type record.
    pub fn parse(data: &'a [u8]) -> Result<Btf<'a>, BtfError> {
        if data.len() < 4 {
            return Err(BtfError::Truncated);
        }
        let magic = u16::from_ne_bytes([data[0], data[1]]);
        if magic == MAGIC.swap_bytes() {
            return Err(BtfError::OtherByteOrder);
        }
        if magic != MAGIC {
            return Err(BtfError::BadMagic);
        }
        if data[2] != 1 {
            return Err(BtfError::UnsupportedHeader);
        }
        if data.len() < HEADER_LEN {
            return Err(BtfError::Truncated);
        }
        let hdr_len = u32_at(data, 4) as usize;
        if hdr_len < HEADER_LEN || hdr_len > data.len() {
            return Err(BtfError::UnsupportedHeader);
        }
        let body = &data[hdr_len..];
        let section = |off: usize, len: usize| -> Result<&'a [u8], BtfError> {
            let (off, len) = (u32_at(data, off) as usize, u32_at(data, len) as usize);
            off.checked_add(len)
                .and_then(|end| body.get(off..end))
                .ok_or(BtfError::BadSection)
        };
        let types = section(8, 12)?;
        let strings = section(16, 20)?;
        let mut btf = Btf {
            types,
            strings,
            starts: Vec::with_capacity(types.len() / 32),
        };
        let mut at = 0usize;
        while at < types.len() {
            let id = btf.starts.len() as u32 + 1;
            btf.starts.push(at as u32);
            at += btf.record_len(id, at)?;
        }
        Ok(btf)
    }

    /// How many types there are, `void` (id 0) not counted.
    pub fn type_count(&self) -> u32 {
        self.starts.len() as u32
    }

    /// The length of the record of type `id` starting at `at`.
    fn record_len(&self, id: u32, at: usize) -> Result<usize, BtfError> {
        let header = self
            .types
            .get(at..at + TYPE_HEADER_LEN)
            .ok_or(BtfError::TruncatedType { id })?;
        let info = u32_at(header, 4);
        let code = (info >> 24) & 0x1f;
        let kind = Kind::from_code(code).ok_or(BtfError::UnknownKind { id, kind: code })?;
        let len = TYPE_HEADER_LEN + kind.trailer_len((info & 0xffff) as usize);
        if self.types.len() - at < len {
            return Err(BtfError::TruncatedType { id });
        }
        Ok(len)
    }

    /// The record of type `id`; None for `void` and ids past the last.
    fn record(&self, id: u32) -> Option<TypeRecord<'a>> {
        let at = *self.starts.get((id as usize).checked_sub(1)?)? as usize;
        // parse() checked that the whole record lies in the section.
        let types: &'a [u8] = self.types;
        let info = u32_at(types, at + 4);
        let kind = Kind::from_code((info >> 24) & 0x1f)?;
        let vlen = (info & 0xffff) as usize;
        let start = at + TYPE_HEADER_LEN;
        Some(TypeRecord {
            kind,
            kind_flag: info >> 31 == 1,
            size_or_type: u32_at(types, at + 8),
            trailer: &types[start..start + kind.trailer_len(vlen)],
        })
    }

    /// The name at `offset` in the string section, as bytes; empty for
    /// anonymous types and offsets out of range.
    fn name(&self, offset: u32) -> &'a [u8] {
        let strings: &'a [u8] = self.strings;
        let Some(rest) = strings.get(offset as usize..) else {
            return b"";
        };
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        &rest[..end]
    }

    /// The kind of type `id`; None for `void` or an unknown id.
    pub fn kind(&self, id: u32) -> Option<Kind> {
        self.record(id).map(|r| r.kind)
    }

    /// The first type of `kind` named `name`.
    pub fn find(&self, kind: Kind, name: &str) -> Option<u32> {
        self.find_all(&[(kind, name)])[0]
    }

    /// Several [`find`](Btf::find)s in one pass over the types.
    pub fn find_all(&self, wanted: &[(Kind, &str)]) -> Vec<Option<u32>> {
        let mut found = vec![None; wanted.len()];
        let mut missing = wanted.len();
        for (index, &at) in self.starts.iter().enumerate() {
            if missing == 0 {
                break;
            }
            let at = at as usize;
            let code = (u32_at(self.types, at + 4) >> 24) & 0x1f;
            let Some(kind) = Kind::from_code(code) else {
                continue;
            };
            let mut name = None;
            for (slot, &(want_kind, want_name)) in found.iter_mut().zip(wanted) {
                if slot.is_some() || want_kind != kind {
                    continue;
                }
                let name = *name.get_or_insert_with(|| self.name(u32_at(self.types, at)));
                if name == want_name.as_bytes() {
                    *slot = Some(index as u32 + 1);
                    missing -= 1;
                }
            }
        }
        found
    }

    /// Type `id` with typedefs and qualifiers looked through.
    pub fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..MAX_DEPTH {
            match self.record(id) {
                Some(r)
                    if matches!(
                        r.kind,
                        Kind::Typedef
                            | Kind::Volatile
                            | Kind::Const
                            | Kind::Restrict
                            | Kind::TypeTag
                    ) =>
                {
                    id = r.size_or_type
                }
                _ => return id,
            }
        }
        id
    }

    /// The size in bytes of a value of type `id` (typedefs looked
    /// through): None for `void`, functions and the like. Pointers are
    /// 8 bytes: this reader serves 64-bit kernels.
    pub fn size_of(&self, id: u32) -> Option<u32> {
        // Arrays multiply their element's size.
        let mut id = id;
        let mut count: u32 = 1;
        for _ in 0..MAX_DEPTH {
            let r = self.record(self.resolve(id))?;
            let size = match r.kind {
                Kind::Ptr => 8,
                Kind::Int
                | Kind::Enum
                | Kind::Enum64
                | Kind::Struct
                | Kind::Union
                | Kind::Float => r.size_or_type,
                Kind::Array => {
                    count = count.checked_mul(u32_at(r.trailer, 8))?;
                    id = u32_at(r.trailer, 0);
                    continue;
                }
                _ => return None,
            };
            return size.checked_mul(count);
        }
        None
    }

    /// Whether type `id` is a pointer, typedefs looked through.
    pub fn is_pointer(&self, id: u32) -> bool {
        self.kind(self.resolve(id)) == Some(Kind::Ptr)
    }

    /// The member `name` of struct or union `id`, also when it sits in
    /// an anonymous struct or union inside it (as the kernel's
    /// `__bpf_md_ptr` and randomized layouts put members). None when there
    /// is no such member, or it is a bit field.
    pub fn member(&self, id: u32, name: &str) -> Option<Member> {
        let mut budget = MEMBER_BUDGET;
        self.member_within(id, name.as_bytes(), &mut budget, 0)
    }

    fn member_within(
        &self,
        id: u32,
        name: &[u8],
        budget: &mut usize,
        depth: usize,
    ) -> Option<Member> {
        let r = self.record(self.resolve(id))?;
        if !matches!(r.kind, Kind::Struct | Kind::Union) || depth >= MAX_DEPTH {
            return None;
        }
        *budget = budget.checked_sub(r.trailer.len() / 12 + 1)?;
        let mut anonymous = Vec::new();
        for entry in r.trailer.chunks_exact(12) {
            let (name_off, type_id, raw_offset) =
                (u32_at(entry, 0), u32_at(entry, 4), u32_at(entry, 8));
            // With kind_flag the top 8 bits are a bit field's width.
            let (bit_offset, bit_size) = if r.kind_flag {
                (raw_offset & 0xff_ffff, raw_offset >> 24)
            } else {
                (raw_offset, 0)
            };
            let member_name = self.name(name_off);
            if member_name == name {
                if bit_size != 0 || bit_offset % 8 != 0 {
                    return None;
                }
                return Some(Member {
                    offset: bit_offset / 8,
                    type_id,
                });
            }
            if member_name.is_empty() && bit_offset % 8 == 0 {
                anonymous.push((type_id, bit_offset / 8));
            }
        }
        // Named members first: a name outside any anonymous part wins.
        anonymous.into_iter().find_map(|(type_id, base)| {
            let inner = self.member_within(type_id, name, budget, depth + 1)?;
            Some(Member {
                offset: base.checked_add(inner.offset)?,
                type_id: inner.type_id,
            })
        })
    }
}

/// The native-endian u32 at `at`; callers have checked the bounds.
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds BTF by hand: types are numbered from 1 in the order added.
    #[derive(Default)]
    pub(crate) struct Builder {
        types: Vec<u8>,
        strings: Vec<u8>,
        count: u32,
    }

    impl Builder {
        pub(crate) fn new() -> Builder {
            // Offset 0 is the empty name.
            Builder {
                strings: vec![0],
                ..Builder::default()
            }
        }

        fn string(&mut self, s: &str) -> u32 {
            if s.is_empty() {
                return 0;
            }
            let at = self.strings.len() as u32;
            self.strings.extend_from_slice(s.as_bytes());
            self.strings.push(0);
            at
        }

        fn words(&mut self, words: &[u32]) {
            for w in words {
                self.types.extend_from_slice(&w.to_ne_bytes());
            }
        }

        /// A record header: name, kind, vlen, kind_flag, size-or-type.
        pub(crate) fn header(
            &mut self,
            name: &str,
            kind: u32,
            vlen: u32,
            flag: bool,
            size: u32,
        ) -> u32 {
            let name = self.string(name);
            let info = (kind << 24) | vlen | (u32::from(flag) << 31);
            self.words(&[name, info, size]);
            self.count += 1;
            self.count
        }

        pub(crate) fn int(&mut self, name: &str, size: u32) -> u32 {
            let id = self.header(name, 1, 0, false, size);
            self.words(&[size * 8]);
            id
        }

        pub(crate) fn ptr(&mut self, to: u32) -> u32 {
            self.header("", 2, 0, false, to)
        }

        pub(crate) fn typedef(&mut self, name: &str, to: u32) -> u32 {
            self.header(name, 8, 0, false, to)
        }

        pub(crate) fn func(&mut self, name: &str, proto: u32) -> u32 {
            self.header(name, 12, 0, false, proto)
        }

        pub(crate) fn array(&mut self, elem: u32, count: u32) -> u32 {
            let id = self.header("", 3, 0, false, 0);
            self.words(&[elem, elem, count]);
            id
        }

        /// A struct (or union, `kind` 5) of (name, type, bit offset).
        pub(crate) fn composite(
            &mut self,
            kind: u32,
            name: &str,
            size: u32,
            members: &[(&str, u32, u32)],
        ) -> u32 {
            let id = self.header(name, kind, members.len() as u32, false, size);
            for &(name, ty, bits) in members {
                let name = self.string(name);
                self.words(&[name, ty, bits]);
            }
            id
        }

        pub(crate) fn bytes(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&MAGIC.to_ne_bytes());
            out.extend_from_slice(&[1, 0]);
            for w in [
                HEADER_LEN as u32,
                0,
                self.types.len() as u32,
                self.types.len() as u32,
                self.strings.len() as u32,
            ] {
                out.extend_from_slice(&w.to_ne_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    /// struct outer { int a; union { long b; struct { short c; }; }; };
    fn nested() -> (Vec<u8>, u32, u32, u32) {
        let mut b = Builder::new();
        let int = b.int("int", 4);
        let long = b.int("long", 8);
        let short = b.int("short", 2);
        let alias = b.typedef("s16", short);
        let inner = b.composite(4, "", 2, &[("c", alias, 0)]);
        let union = b.composite(5, "", 8, &[("b", long, 0), ("", inner, 0)]);
        let outer = b.composite(4, "outer", 16, &[("a", int, 0), ("", union, 64)]);
        (b.bytes(), outer, long, alias)
    }

    #[test]
    fn finds_members_inside_anonymous_unions_and_structs() {
        let (bytes, outer, long, alias) = nested();
        let btf = Btf::parse(&bytes).unwrap();
        assert_eq!(btf.type_count(), 7);
        assert_eq!(btf.find(Kind::Struct, "outer"), Some(outer));
        let a = btf.member(outer, "a").unwrap();
        assert_eq!(a.offset, 0);
        let b = btf.member(outer, "b").unwrap();
        assert_eq!((b.offset, b.type_id), (8, long));
        let c = btf.member(outer, "c").unwrap();
        assert_eq!((c.offset, c.type_id), (8, alias));
        assert_eq!(btf.size_of(c.type_id), Some(2));
        assert_eq!(btf.kind(btf.resolve(c.type_id)), Some(Kind::Int));
        assert_eq!(btf.member(outer, "d"), None);
    }

    #[test]
    fn finds_several_names_in_one_pass_and_tells_kinds_apart() {
        let mut b = Builder::new();
        let int = b.int("task", 4);
        let st = b.composite(4, "task", 4, &[("x", int, 0)]);
        let f = b.func("task", 0);
        let bytes = b.bytes();
        let btf = Btf::parse(&bytes).unwrap();
        assert_eq!(
            btf.find_all(&[
                (Kind::Func, "task"),
                (Kind::Struct, "task"),
                (Kind::Union, "task"),
                (Kind::Struct, "tas"),
            ]),
            vec![Some(f), Some(st), None, None]
        );
    }

    #[test]
    fn pointers_arrays_and_void() {
        let mut b = Builder::new();
        let int = b.int("int", 4);
        let ptr = b.ptr(int);
        let arr = b.array(int, 5);
        let arr2 = b.array(arr, 3);
        let bytes = b.bytes();
        let btf = Btf::parse(&bytes).unwrap();
        assert!(btf.is_pointer(ptr));
        assert!(!btf.is_pointer(int));
        assert_eq!(btf.size_of(ptr), Some(8));
        assert_eq!(btf.size_of(arr2), Some(60));
        assert_eq!(btf.size_of(0), None);
        assert_eq!(btf.kind(0), None);
        assert_eq!(btf.kind(99), None);
    }

    #[test]
    fn bit_fields_are_not_members_to_load() {
        let mut b = Builder::new();
        let int = b.int("int", 4);
        // kind_flag: offset in the low 24 bits, width in the high 8.
        let id = b.header("flags", 4, 2, true, 4);
        let (x, y) = (b.string("x"), b.string("y"));
        b.words(&[x, int, 3 << 24, y, int, 16]);
        let bytes = b.bytes();
        let btf = Btf::parse(&bytes).unwrap();
        assert_eq!(btf.member(id, "x"), None);
        assert_eq!(btf.member(id, "y").unwrap().offset, 2);
    }

    #[test]
    fn loops_end() {
        let mut b = Builder::new();
        // Type 1 is a typedef of itself; type 2 a struct whose two
        // anonymous members are itself (2^32 paths, cut short by the
        // budget); type 3 an array of itself.
        b.typedef("loop", 1);
        b.composite(4, "s", 4, &[("", 2, 0), ("", 2, 0)]);
        b.array(3, 2);
        let bytes = b.bytes();
        let btf = Btf::parse(&bytes).unwrap();
        assert_eq!(btf.resolve(1), 1);
        assert_eq!(btf.size_of(1), None);
        assert_eq!(btf.member(2, "x"), None);
        assert_eq!(btf.size_of(3), None);
    }

    #[test]
    fn bad_headers_and_sections_are_errors() {
        let (good, ..) = nested();
        assert!(Btf::parse(&good).is_ok());
        assert_eq!(Btf::parse(&[]).err(), Some(BtfError::Truncated));
        assert_eq!(Btf::parse(&good[..10]).err(), Some(BtfError::Truncated));
        let mut bad = good.clone();
        bad[0] ^= 1;
        assert_eq!(Btf::parse(&bad).err(), Some(BtfError::BadMagic));
        let mut swapped = good.clone();
        swapped.swap(0, 1);
        assert_eq!(Btf::parse(&swapped).err(), Some(BtfError::OtherByteOrder));
        let mut version = good.clone();
        version[2] = 2;
        assert_eq!(
            Btf::parse(&version).err(),
            Some(BtfError::UnsupportedHeader)
        );
        // The string section's length runs past the end.
        let mut long = good.clone();
        long[20..24].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(Btf::parse(&long).err(), Some(BtfError::BadSection));
        // A record cut short by the type section's end.
        let mut cut = good.clone();
        let type_len = u32_at(&good, 12);
        cut[12..16].copy_from_slice(&(type_len - 4).to_ne_bytes());
        assert!(matches!(
            Btf::parse(&cut).err(),
            Some(BtfError::TruncatedType { .. })
        ));
    }

    #[test]
    fn an_unknown_kind_is_an_error() {
        let mut b = Builder::new();
        b.int("int", 4);
        b.header("new", 31, 0, false, 0);
        let bytes = b.bytes();
        assert_eq!(
            Btf::parse(&bytes).err(),
            Some(BtfError::UnknownKind { id: 2, kind: 31 })
        );
    }

    #[test]
    fn names_out_of_range_are_empty() {
        let mut b = Builder::new();
        let int = b.int("int", 4);
        let id = b.composite(4, "s", 4, &[("x", int, 0)]);
        let mut bytes = b.bytes();
        // Point the member's name far past the string section.
        let member_name_at = HEADER_LEN + 16 + 12;
        bytes[member_name_at..member_name_at + 4].copy_from_slice(&9999u32.to_ne_bytes());
        let btf = Btf::parse(&bytes).unwrap();
        assert_eq!(btf.member(id, "x"), None);
    }
}
