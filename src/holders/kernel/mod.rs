//! Socket holders from the kernel: a BPF `task_file` iterator walks
//! every task's fd table in the kernel. Its field offsets come from the
//! running kernel's BTF ([`btf`]).

pub mod btf;
