//! Helpers shared by the integration tests: networks with seeded weights and
//! inputs, temporary directories, safetensors and `.npy` files, and running
//! the `pi-models` binary.
#![allow(dead_code)]

use pi_models::weights::{init_weights, weights_from_bytes};
use pi_models::{FoldedModel, NetSpec, Network};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The network of a spec that must parse.
pub fn net(spec: &str) -> Network {
    Network::new(&NetSpec::parse(spec).unwrap())
}

/// Seeded random weights for `net`, folded.
pub fn folded(net: &Network, seed: u64) -> FoldedModel {
    weights_from_bytes(&init_weights(net, seed).unwrap(), net).unwrap()
}

/// A seeded input for `net`, uniform in [-1, 1).
pub fn random_input(net: &Network, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x5eed);
    let n = net.tensors[net.input].shape.numel();
    (0..n)
        .map(|_| ((rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32) * 2.0 - 1.0)
        .collect()
}

/// A fresh empty directory under Cargo's per-target temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "pi-models-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An owned tensor for rewriting safetensors files in tests.
#[derive(Clone, Debug)]
pub struct Raw {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

pub fn unpack(bytes: &[u8]) -> Vec<Raw> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let mut v: Vec<Raw> = st
        .tensors()
        .into_iter()
        .map(|(name, t)| Raw {
            name,
            dtype: t.dtype(),
            shape: t.shape().to_vec(),
            data: t.data().to_vec(),
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

pub fn pack(tensors: &[Raw]) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                TensorView::new(r.dtype, r.shape.clone(), &r.data).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views.iter().map(|(n, v)| (n.as_str(), v)), None).unwrap()
}

pub fn f32s(r: &Raw) -> Vec<f32> {
    assert_eq!(r.dtype, Dtype::F32);
    r.data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// FNV-1a 64, to pin file bytes in a test without a hashing dependency.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// Writes a float32 C-order .npy file.
pub fn write_npy(path: &std::path::Path, shape: &[usize], data: &[f32]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_txt}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, out).unwrap();
}

/// The `pi-models` binary as a command (without backtrace variables, so error text is stable).
pub fn command(args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_pi-models"));
    c.args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    c
}

/// Runs the `pi-models` binary.
pub fn run(args: &[&str]) -> std::process::Output {
    command(args).output().unwrap()
}

/// Runs `pi-models`, asserts success and returns stdout.
pub fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Runs `pi-models`, asserts a clean failure (no panic) whose stderr contains `needle`.
pub fn fails(args: &[&str], needle: &str) {
    let o = run(args);
    assert!(!o.status.success(), "{args:?} succeeded");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains(needle), "{args:?}: {e}");
    assert!(!e.contains("panicked"), "{args:?}: {e}");
}
