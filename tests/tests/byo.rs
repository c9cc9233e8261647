//! README's "Bring your own trained network", last step: serve the model
//! file that `models/tools/export_pytorch.py` wrote (`models/fixtures/byo`:
//! SNL-style pixel masks, a channel mask, culling, thinning, normalisation)
//! and run its exported inputs through `pi-client` in one session. Every
//! answer equals the fixed-point oracle bit for bit and predicts PyTorch's
//! class.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use pi_tests::{TestModel, server_process};

const CLIENT: &str = env!("CARGO_BIN_EXE_pi-test-client");
const SERVER: &str = env!("CARGO_BIN_EXE_pi-test-server");

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/fixtures/byo")
}

#[test]
fn the_exported_network_is_served_bit_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    pi_protocol::transport::pki::keygen(&keys, &[], &["1".into()]).unwrap();
    let model_file = fixture().join("model.toml");
    let args: Vec<&OsStr> = vec![
        "--model".as_ref(),
        model_file.as_os_str(),
        "--relu".as_ref(),
        "gc,ot".as_ref(),
        "--tls".as_ref(),
        keys.as_os_str(),
    ];
    let (mut server, addr) = server_process(SERVER, &args);
    let model = TestModel::file(&model_file);
    let torch: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture().join("pytorch_logits.json")).unwrap(),
    )
    .unwrap();
    for mode in ["gc", "ot"] {
        let out = Command::new(CLIENT)
            .args(["--connect", &addr, "--relu", mode, "--json", "--tls"])
            .arg(&keys)
            .arg("--input")
            .arg(fixture())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<serde_json::Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4, "three inputs and the summary: {stdout}");
        for v in &lines[..3] {
            let path = Path::new(v["input"].as_str().unwrap());
            let raw = pi_client::read_input(path).unwrap();
            let got: Vec<i64> = v["logits_fixed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap())
                .collect();
            assert_eq!(got, model.oracle(&raw), "{mode}: {}", path.display());
            let name = path.file_name().unwrap().to_str().unwrap();
            let expected: Vec<f64> = torch[name]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            let class = (0..expected.len())
                .max_by(|&a, &b| expected[a].total_cmp(&expected[b]))
                .unwrap();
            assert_eq!(v["class"], class, "{mode}: {name}");
            assert_eq!(v["relus"], 921);
        }
        assert_eq!(lines[3]["summary"]["completed"], 3);
    }
    server.kill().unwrap();
    server.wait().unwrap();
}
