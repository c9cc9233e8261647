//! `pi-server`: see [`pi_server::cli`].

fn main() -> std::process::ExitCode {
    pi_server::cli::main()
}
