//! Size limits on what the library reads and allocates: file caps count the
//! bytes actually read (devices and pipes included), and a network too large
//! for memory is refused from its parameter count before anything is allocated.

mod common;

use pi_models::files::read_capped;
use pi_models::weights::{
    MAX_PARAMS, check_network_size, init_weights, load_weights, max_file_bytes,
};
use pi_models::{Error, Model};
use std::path::Path;

/// ResNet18 at m = 2048: 11,427,131,492 parameters, 91 GB as f64.
const HUGE: &str = "resnet18(m=2048)";

#[test]
fn read_capped_counts_bytes_read() {
    let dir = common::temp_dir("capped");
    let p = dir.join("f");
    std::fs::write(&p, vec![7u8; 1000]).unwrap();
    assert_eq!(read_capped(&p, 1000, "test").unwrap(), vec![7u8; 1000]);
    assert_eq!(read_capped(&p, 5000, "test").unwrap().len(), 1000);
    let e = read_capped(&p, 999, "test file").unwrap_err();
    assert!(
        matches!(
            &e,
            Error::TooLarge {
                limit: 999,
                what: "test file",
                ..
            }
        ),
        "{e}"
    );
    assert!(matches!(
        read_capped(&dir.join("missing"), 10, "test"),
        Err(Error::Io { .. })
    ));
}

/// `/dev/zero` reports length 0 and never ends: the cap stops it.
#[cfg(unix)]
#[test]
fn endless_device_is_refused_at_the_cap() {
    let e = read_capped(Path::new("/dev/zero"), 1 << 20, "input").unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("/dev/zero"), "{e}");

    // The same through every loader (input, weights), in their own error kinds.
    let model = Model::resolve("2x2x2x(m=2,phi=1-1-1-1,classes=3,input=8,channels=1)").unwrap();
    let e = model.load_input(Path::new("/dev/zero")).unwrap_err();
    assert!(matches!(e, Error::Input(_)), "{e}");
    assert!(e.to_string().contains("limit"), "{e}");
    let e = model
        .load_weights(Some(Path::new("/dev/zero")))
        .unwrap_err();
    assert!(matches!(e, Error::Weights { .. }), "{e}");
    assert!(e.to_string().contains("limit"), "{e}");
}

/// A FIFO with a writer that never stops is refused at the cap (the writer
/// then sees a closed pipe and ends).
#[cfg(unix)]
#[test]
fn endless_fifo_is_refused_at_the_cap() {
    use std::io::Write;
    let dir = common::temp_dir("fifo");
    let fifo = dir.join("pipe.npy");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let path = fifo.clone();
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        let block = vec![0u8; 1 << 16];
        let mut sent = 0u64;
        // Stops when the reader closes its end (EPIPE; SIGPIPE is ignored in Rust).
        while f.write_all(&block).is_ok() {
            sent += block.len() as u64;
        }
        sent
    });
    let e = read_capped(&fifo, 1 << 20, "input").unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");
    let sent = writer.join().unwrap();
    assert!(sent >= 1 << 20, "{sent}");
}

#[test]
fn huge_network_is_refused_before_allocating() {
    let model = Model::resolve(HUGE).unwrap();
    let net = &model.network;
    // Counting needs no weights, so stats still work.
    assert_eq!(net.params(), 11_427_131_492);
    assert!(net.params() > MAX_PARAMS);
    let refused = |e: Error| {
        assert!(
            matches!(
                e,
                Error::NetworkTooLarge {
                    params: 11_427_131_492,
                    ..
                }
            ),
            "{e}"
        );
        let text = e.to_string();
        assert!(
            text.contains("11427131492") && text.contains("MAX_PARAMS"),
            "{text}"
        );
    };
    refused(check_network_size(net).unwrap_err());
    // Would allocate ~90 GB (and abort) without the check.
    refused(init_weights(net, 1).unwrap_err());
    // Refused before the file is even opened: /dev/zero is never read.
    refused(load_weights(Path::new("/dev/zero"), net).unwrap_err());
    refused(load_weights(Path::new("/nonexistent"), net).unwrap_err());

    // ResNet18 at m = 256 (178,751,076 parameters) is below the cap.
    let wide = common::net("resnet18(m=256)");
    assert_eq!(wide.params(), 178_751_076);
    assert!(check_network_size(&wide).is_ok());
}

/// The per-network weight-file cap admits every file the network can have: the
/// largest dtype (F64) with the longest accepted names (`module.` prefix).
#[test]
fn weight_file_cap_admits_f64_and_long_names() {
    for spec in [
        "2x2x2x(m=2,phi=2-1-1-1,classes=3,input=8,channels=2)",
        "5x5x3x(m=4,phi=1-2-1-1,classes=10,input=8,channels=1)",
        "resnet18(m=8,classes=1000)",
    ] {
        let net = common::net(spec);
        let raw = common::unpack(&init_weights(&net, 5).unwrap());
        let wide: Vec<common::Raw> = raw
            .into_iter()
            .map(|r| {
                let (dtype, data) = if r.dtype == safetensors::tensor::Dtype::F32 {
                    let data = common::f32s(&r)
                        .iter()
                        .flat_map(|&v| (v as f64).to_le_bytes())
                        .collect();
                    (safetensors::tensor::Dtype::F64, data)
                } else {
                    (r.dtype, r.data)
                };
                common::Raw {
                    name: format!("module.{}", r.name),
                    dtype,
                    shape: r.shape,
                    data,
                }
            })
            .collect();
        let bytes = common::pack(&wide);
        let cap = max_file_bytes(&net);
        assert!(
            (bytes.len() as u64) <= cap,
            "{spec}: {} > {cap}",
            bytes.len()
        );
        // Loading through the capped reader works and matches the f32 file.
        let dir = common::temp_dir("cap");
        let p = dir.join("w.safetensors");
        std::fs::write(&p, &bytes).unwrap();
        let f64_file = load_weights(&p, &net).unwrap();
        let f32_file = common::folded(&net, 5);
        assert_eq!(f64_file, f32_file, "{spec}");
    }
}
