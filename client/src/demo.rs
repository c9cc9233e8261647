//! `pi-client demo`: one complete private inference on the bundled digits
//! model (`models/fixtures/digits`: a HybReNet trained on scikit-learn's
//! digits, test image 0, true label 3).
//!
//! The demo makes throwaway certificates in a temporary directory, starts the
//! server as a child process (this same executable in the hidden
//! `demo-server` mode, so one `cargo run` suffices), reads its
//! `listening on ADDR` line, runs the client here over loopback TCP + TLS,
//! prints the prediction, the true label and the cost per phase, and stops
//! the server by closing its standard input. The fixture files are embedded
//! in the executable, so the demo works from any directory.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use pi_protocol::ClientConfig;
use pi_protocol::transport::ChannelConfig;
use pi_protocol::transport::pki::{TlsFiles, keygen};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::ClientOptions;

/// The model file, weights and test image 0 of the digits fixture.
const MODEL_TOML: &str = include_str!("../../models/fixtures/digits/model.toml");
const WEIGHTS: &[u8] = include_bytes!("../../models/fixtures/digits/weights.safetensors");
const IMAGE: &[u8] = include_bytes!("../../models/fixtures/digits/image0.npy");
/// The true label of `image0.npy` (models/fixtures/digits/README.md).
pub const IMAGE_LABEL: usize = 3;

/// Writes the fixture (model.toml, weights.safetensors, image0.npy) into `dir`.
pub fn write_fixture(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("model.toml"), MODEL_TOML)?;
    std::fs::write(dir.join("weights.safetensors"), WEIGHTS)?;
    std::fs::write(dir.join("image0.npy"), IMAGE)?;
    Ok(())
}

/// Runs the demo (see the module docs).
pub async fn run(relu: pi_protocol::ReluMode, verbose: u8) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir().context("cannot make a temporary directory")?;
    let fixture = tmp.path().join("digits");
    let keys = tmp.path().join("keys");
    write_fixture(&fixture)?;
    keygen(&keys, &[], &["1".to_string()]).context("keygen")?;
    println!(
        "keys:   throwaway CA, server and client certificates in {}",
        keys.display()
    );

    let exe = std::env::current_exe().context("cannot locate this executable")?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("demo-server")
        .arg("--model")
        .arg(fixture.join("model.toml"))
        .args(["--listen", "127.0.0.1:0", "--tls"])
        .arg(&keys)
        .args(["--grace", "2", "--relu", "gc,ot"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if verbose > 0 {
        cmd.arg(format!("-{}", "v".repeat(verbose.into())));
    }
    let mut child = cmd.spawn().context("cannot start the server process")?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().context("server stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .context("the server did not start within 60 s")??;
    let addr = match first
        .as_deref()
        .and_then(|l| l.strip_prefix("listening on "))
    {
        Some(a) => a.trim().to_string(),
        None => bail!("unexpected first line from the server: {first:?}"),
    };
    println!(
        "server: pid {}, model digits ({}), listening on {addr}",
        child.id().unwrap_or(0),
        fixture.join("model.toml").display()
    );

    let raw = crate::read_input(&fixture.join("image0.npy"))?;
    println!(
        "client: input image0.npy {:?}, connecting over TLS 1.3",
        raw.shape
    );
    let opts = ClientOptions {
        addr: addr.clone(),
        server_name: "localhost".into(),
        tls: TlsFiles::client(&keys, "1").load()?,
        channel: ChannelConfig::default(),
        session: ClientConfig {
            relu,
            ..ClientConfig::default()
        },
    };
    let outcome = crate::console::infer_with_progress(&opts, &raw, true).await;

    // Closing stdin asks the server to stop.
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    let outcome = outcome?;
    println!();
    print!("{}", crate::console::summary(&outcome, Some(IMAGE_LABEL)));
    match status {
        Ok(Ok(s)) if s.success() => println!("server: stopped cleanly"),
        Ok(Ok(s)) => println!("server: exited with {s}"),
        Ok(Err(e)) => println!("server: {e}"),
        Err(_) => {
            let _ = child.kill().await;
            println!("server: did not stop within 10 s, killed");
        }
    }
    Ok(())
}

/// The demo's server: `pi-server` serving until standard input closes (or a signal).
pub async fn serve_child(args: pi_server::cli::ServeArgs) -> anyhow::Result<()> {
    let stdin_closed = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    let signal = pi_server::shutdown_signal();
    let stop = async {
        tokio::select! {
            () = stdin_closed => {}
            () = signal => {}
        }
    };
    pi_server::cli::serve(args, stop).await
}
