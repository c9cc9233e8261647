//! Both parties in this process over real loopback TCP + TLS 1.3: the
//! server is `pi_server::Listener`, the client `pi_client::run_inference`.
//! The oracle is the fixed-point reference in `pi_models`.

use std::time::Duration;

use pi_client::{ClientError, run_inference};
use pi_protocol::ReluMode;
use pi_tests::{
    Keys, RunningServer, TINY, TestModel, client_options, client_options_in, digits_image,
    random_input, serve_config,
};

fn no_progress() -> impl FnMut(pi_client::Progress) + Send {
    |_| {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_specs_are_bit_exact_over_tls_in_both_modes() {
    let keys = Keys::new();
    for (i, spec) in [TINY, "resnet18(m=2,input=8,classes=3,channels=2)"]
        .into_iter()
        .enumerate()
    {
        let model = TestModel::random(spec, 10 + i as u64).both_modes();
        let server =
            RunningServer::start(&model, &keys, serve_config(2, Duration::from_secs(60))).await;
        for (seed, mode) in [(0, ReluMode::Gc), (1, ReluMode::Ot)] {
            let raw = random_input(&model.input_shape(), seed);
            let out = run_inference(
                &client_options_in(server.addr, keys.client(), mode),
                &raw,
                &mut no_progress(),
            )
            .await
            .expect("inference");
            assert_eq!(
                out.report.logits_fixed,
                model.oracle(&raw),
                "{spec}, input {seed}, {mode} mode"
            );
            assert_eq!(out.report.relu_mode, mode);
            assert_eq!(
                out.report.activations.relus,
                model.model.network.stats().relus
            );
            assert!(out.report.offline.bytes_received > 0 && out.report.online.bytes_sent > 0);
        }
        let summary = server.stop().await;
        assert_eq!((summary.inferences, summary.failed), (2, 0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn culled_model_file_uses_truncation_circuits_and_stays_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("culled.toml");
    std::fs::write(&file, format!("spec = \"{TINY}\"\ncull = [\"stage1\"]\n")).unwrap();
    let model = TestModel::random(file.to_str().unwrap(), 3);
    let keys = Keys::new();
    let server =
        RunningServer::start(&model, &keys, serve_config(1, Duration::from_secs(60))).await;
    let raw = random_input(&model.input_shape(), 9);
    let out = run_inference(
        &client_options(server.addr, keys.client()),
        &raw,
        &mut no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(out.report.logits_fixed, model.oracle(&raw));
    assert!(out.report.activations.identity > 0);
    assert!(
        !out.network.masks.is_empty(),
        "the masks travel in the handshake"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digits_model_is_bit_exact_on_test_images() {
    let model = TestModel::digits();
    let keys = Keys::new();
    let server =
        RunningServer::start(&model, &keys, serve_config(2, Duration::from_secs(60))).await;
    let mut steps = 0usize;
    for i in 0..3 {
        let raw = digits_image(i);
        let mut progress = |p: pi_client::Progress| {
            if matches!(p, pi_client::Progress::Step { .. }) {
                steps += 1;
            }
        };
        let out = run_inference(
            &client_options(server.addr, keys.client()),
            &raw,
            &mut progress,
        )
        .await
        .unwrap();
        assert_eq!(out.report.logits_fixed, model.oracle(&raw), "image {i}");
    }
    assert!(steps > 0, "progress is reported per layer");
    // Image 0 is a 3 (models/fixtures/digits/README.md).
    let out = run_inference(
        &client_options(server.addr, keys.client()),
        &digits_image(0),
        &mut no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(out.report.class, 3);
    assert_eq!(server.stop().await.inferences, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_at_once_are_both_served() {
    let model = TestModel::random(TINY, 5);
    let keys = Keys::new();
    let server =
        RunningServer::start(&model, &keys, serve_config(2, Duration::from_secs(60))).await;
    let (a, b) = (
        random_input(&model.input_shape(), 1),
        random_input(&model.input_shape(), 2),
    );
    let (oa, ob) = (
        client_options(server.addr, keys.client()),
        client_options(server.addr, keys.client()),
    );
    let (mut pa, mut pb) = (no_progress(), no_progress());
    let (ra, rb) = tokio::join!(
        run_inference(&oa, &a, &mut pa),
        run_inference(&ob, &b, &mut pb)
    );
    assert_eq!(ra.unwrap().report.logits_fixed, model.oracle(&a));
    assert_eq!(rb.unwrap().report.logits_fixed, model.oracle(&b));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_of_the_wrong_shape_is_a_client_error_and_the_server_goes_on() {
    let model = TestModel::random(TINY, 6);
    let keys = Keys::new();
    let server =
        RunningServer::start(&model, &keys, serve_config(1, Duration::from_secs(60))).await;
    let wrong = random_input(&[1, 4, 4], 1);
    let err = run_inference(
        &client_options(server.addr, keys.client()),
        &wrong,
        &mut no_progress(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ClientError::Input(_)), "{err}");
    assert!(err.to_string().contains("expected (1, 8, 8)"), "{err}");
    // The server was told politely and serves the next client.
    let raw = random_input(&model.input_shape(), 2);
    let out = run_inference(
        &client_options(server.addr, keys.client()),
        &raw,
        &mut no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(out.report.logits_fixed, model.oracle(&raw));
    let summary = server.stop().await;
    assert_eq!(
        (summary.connections, summary.inferences, summary.failed),
        (2, 1, 0)
    );
}

#[test]
fn nan_and_bad_rank_inputs_are_refused_before_connecting() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("nan.npy");
    let mut data = vec![0.5f32; 64];
    data[17] = f32::NAN;
    pi_tests::write_npy(&path, &data, &[1, 8, 8]);
    let err = pi_client::read_input(&path).unwrap_err();
    assert!(matches!(err, ClientError::Input(_)));
    assert!(err.to_string().contains("element 17"), "{err}");

    let flat = tmp.path().join("flat.npy");
    pi_tests::write_npy(&flat, &[0.0; 64], &[64]);
    let err = pi_client::read_input(&flat).unwrap_err();
    assert!(err.to_string().contains("(C, H, W)"), "{err}");

    let good = tmp.path().join("good.npy");
    pi_tests::write_npy(&good, &[0.25; 64], &[1, 8, 8]);
    let raw = pi_client::read_input(&good).unwrap();
    assert_eq!(
        (raw.shape.as_slice(), raw.data[3]),
        (&[1usize, 8, 8][..], 0.25)
    );
    // With a pinned model, the shape is checked before connecting too.
    let err = pi_client::check_against_model(TINY, &random_input(&[1, 4, 4], 0)).unwrap_err();
    assert!(matches!(err, ClientError::Input(_)), "{err}");
    assert!(pi_client::check_against_model(TINY, &raw).is_ok());
}
