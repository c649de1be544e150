//! The `tandem` binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    tandem_server::cli::main()
}
