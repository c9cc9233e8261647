//! `pi-client`: see [`pi_client::cli`].

fn main() -> std::process::ExitCode {
    pi_client::cli::main()
}
