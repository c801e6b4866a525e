fn main() {
    let all = lsport::holders::kernel::kernel_fd_walk(None).unwrap();
    for f in all.iter().filter(|f| f.inode < 100000 || f.pid < 8000) {
        println!("{f:?}");
    }
    println!("{}", all.len());
}
