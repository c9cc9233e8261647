//! The `pi-server` command line, built inside pi-tests so that its tests can
//! run it as a process (`CARGO_BIN_EXE_pi-test-server`).

fn main() -> std::process::ExitCode {
    pi_server::cli::main()
}
