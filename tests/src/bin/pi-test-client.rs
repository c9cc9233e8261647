//! The `pi-client` command line, built inside pi-tests so that its tests can
//! run it as a process (`CARGO_BIN_EXE_pi-test-client`).

fn main() -> std::process::ExitCode {
    pi_client::cli::main()
}
