//! `orchestratr`: the daemon and its CLI client in one binary. See `cli::main`.

fn main() -> std::process::ExitCode {
    orchestratr::cli::main()
}
