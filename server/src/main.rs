//! The `tandem` binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    tune_allocator();
    tandem_server::cli::main()
}

/// glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), so
/// after a burst of large messages (a hostile campaign: frames of a few MiB) later large
/// blocks come from the heap and stay there: RSS went +37% and never came back. A fixed
/// threshold keeps large blocks in their own mappings, returned on free (+3% after the
/// same campaign, against +21% and twice the baseline with mimalloc; docs/benchmarks.md,
/// scripts/bench-hostile-rss.sh).
// The one unsafe call in the binary: libc has no safe wrapper for mallopt.
#[allow(unsafe_code)]
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a malloc parameter; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
