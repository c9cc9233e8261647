//! The session handshake and the parties' API: mode negotiation, refused
//! parameters and models, futures that can be spawned, bad local input.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relu_mode_is_negotiated() {
    // A server that allows only GC: an OT client refuses, naming the modes.
    let net = Network::new(&NetSpec::parse("resnet18(m=2,input=8,classes=3,phi=1-1-1-1)").unwrap());
    let folded = weights_from_bytes(&init_weights(&net, 3).unwrap(), &net).unwrap();
    let quant = QuantModel::quantize(&net, &folded, RingParams::default()).unwrap();
    let gc_only = ServerModel::new(net, quant, None).unwrap();
    assert_eq!(gc_only.relu_modes(), &[ReluMode::Gc]);
    let cfg = ClientConfig {
        relu: ReluMode::Ot,
        ..ClientConfig::default()
    };
    let (mut cs, mut cc) = memory_pair();
    let (s, c) = tokio::join!(
        ServerSession::handshake(&mut cs, &gc_only),
        ClientSession::handshake(&mut cc, &cfg)
    );
    assert!(
        matches!(s, Err(Error::Incompatible(ref m)) if m.contains("the client refused") && m.contains("[gc]")),
        "{:?}",
        s.err()
    );
    match c {
        Err(Error::Incompatible(m)) => assert!(m.contains("[gc]"), "{m}"),
        other => panic!("{:?}", other.err()),
    }
    // A client that asks for a mode the server did not announce misbehaves.
    let (mut cs, mut cc) = memory_pair();
    let (s, _) = tokio::join!(ServerSession::handshake(&mut cs, &gc_only), async move {
        cc.recv(crate::session::MAX_HELLO_BYTES).await.unwrap();
        cc.send(&[3u8; 9]).await.unwrap();
        cc
    });
    assert!(
        matches!(
            s,
            Err(Error::PeerMisbehaved(Misbehavior::ModeNotOffered("ot")))
        ),
        "{:?}",
        s.err()
    );
    // Both allowed: each side reports the client's choice.
    let both = gc_only.with_relu_modes(&BOTH).unwrap();
    let (mut cs, mut cc) = memory_pair();
    let (s, c) = tokio::join!(
        ServerSession::handshake(&mut cs, &both),
        ClientSession::handshake(&mut cc, &cfg)
    );
    assert_eq!(
        (s.unwrap().relu_mode(), c.unwrap().relu_mode()),
        (ReluMode::Ot, ReluMode::Ot)
    );
    // An old architecture message without the field means GC only.
    let mut v = serde_json::to_value(both.architecture()).unwrap();
    v.as_object_mut().unwrap().remove("relu_modes");
    let arch: crate::session::Architecture = serde_json::from_value(v).unwrap();
    assert_eq!(arch.relu_modes, vec![ReluMode::Gc]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_refuses_unsupported_parameters_and_unexpected_models() {
    let model = model_for("resnet18(m=2,input=8,classes=3,phi=1-1-1-1)", 11, |_| {});
    // A tampered architecture: another protocol version, then another HE digest.
    for tamper in [0, 1] {
        let (mut cs, mut cc) = memory_pair();
        let mut arch = model.architecture();
        match tamper {
            0 => arch.version += 1,
            _ => arch.he_digest = "00".repeat(16),
        }
        let (s, c) = tokio::join!(
            async move {
                cs.send(&serde_json::to_vec(&arch).unwrap()).await.unwrap();
                cs.recv(4096).await
            },
            async move {
                ClientSession::handshake(&mut cc, &ClientConfig::default())
                    .await
                    .map(|_| ())
            }
        );
        assert_eq!(s.unwrap()[0], crate::session::TAG_REFUSE);
        let want = ["protocol version", "digest"][tamper];
        assert!(
            matches!(c, Err(Error::Incompatible(ref m)) if m.contains(want)),
            "{c:?}"
        );
    }
    // A pinned client refuses another network; the server learns it was refused.
    let other = model_for("resnet18(m=2,input=8,classes=4,phi=1-1-1-1)", 11, |_| {});
    let cfg = ClientConfig {
        expect: Some(other.network().describe()),
        ..ClientConfig::default()
    };
    let (mut cs, mut cc) = memory_pair();
    let (s, c) = tokio::join!(
        ServerSession::handshake(&mut cs, &model),
        ClientSession::handshake(&mut cc, &cfg)
    );
    assert!(
        matches!(s, Err(Error::Incompatible(ref m)) if m.contains("the client refused") && m.contains("is not the expected")),
        "{:?}",
        s.err()
    );
    assert!(
        matches!(c, Err(Error::Incompatible(ref m)) if m.contains("is not the expected")),
        "{:?}",
        c.err()
    );
    // Garbage instead of an architecture.
    let (mut cs, mut cc) = memory_pair();
    let cfg = ClientConfig::default();
    let (_, c) = tokio::join!(
        cs.send(b"{not json"),
        ClientSession::handshake(&mut cc, &cfg)
    );
    assert!(
        matches!(c, Err(Error::PeerMisbehaved(Misbehavior::Malformed(ref m))) if m.contains("architecture")),
        "{:?}",
        c.err()
    );
}

pub(super) fn assert_send<T: Send>(_: &T) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn party_futures_are_send_and_spawnable() {
    // Binaries spawn one task per connection: every party future must be Send.
    let model = model_for("resnet18(m=2,input=8,classes=3,phi=1-1-1-1)", 12, |_| {});
    let x = random_input(&model, 120);
    let want = oracle(&model, &x);
    let (mut cs, mut cc) = memory_pair();
    let cfg = ClientConfig::default();
    assert_send(&ServerSession::handshake(&mut cs, &model));
    assert_send(&ClientSession::handshake(&mut cc, &cfg));
    assert_send(&crate::serve_one(&mut cs, &model));
    assert_send(&crate::infer_one(&mut cc, &cfg, &x));
    let server = tokio::spawn(async move { crate::serve_one(&mut cs, &model).await });
    let client =
        tokio::spawn(async move { crate::infer_one(&mut cc, &ClientConfig::default(), &x).await });
    let (s, c) = (
        server.await.unwrap().unwrap(),
        client.await.unwrap().unwrap(),
    );
    assert_eq!(c.logits_fixed, want);
    assert_eq!(s.inference, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_local_input_is_bad_input() {
    // Weights beyond the HE weight bound, a wrong layer count, a bad normalisation.
    let net = Network::new(&NetSpec::parse("resnet18(m=2,input=8,classes=3,phi=1-1-1-1)").unwrap());
    let folded = weights_from_bytes(&init_weights(&net, 13).unwrap(), &net).unwrap();
    let ring = RingParams::default();
    let mut quant = QuantModel::quantize(&net, &folded, ring).unwrap();
    let mut big = quant.clone();
    big.layers[2].weight[0] = ring.from_signed(1 << 16);
    let err = ServerModel::new(net.clone(), big, None).unwrap_err();
    assert!(
        matches!(err, Error::BadInput(ref m) if m.contains("layer1.0.conv2")),
        "{err}"
    );
    let mut short = quant.clone();
    short.layers.pop();
    let err = ServerModel::new(net.clone(), short, None).unwrap_err();
    assert!(
        matches!(err, Error::BadInput(ref m) if m.contains("quantised layers")),
        "{err}"
    );
    let norm = crate::session::NormalizationMsg {
        mean: vec![0.0; 2],
        std: vec![1.0; 2],
    };
    let err = ServerModel::new(net.clone(), quant.clone(), Some(norm)).unwrap_err();
    assert!(
        matches!(err, Error::BadInput(ref m) if m.contains("normalisation")),
        "{err}"
    );
    quant.layers[0].weight[0] = ring.from_signed(-(1 << 16) + 1);
    let model = ServerModel::new(net, quant, None).unwrap();
    // A client input of the wrong length or with unreduced values fails before any traffic.
    let (mut cs, mut cc) = memory_pair();
    let (s, c) = tokio::join!(
        async move {
            let mut s = ServerSession::handshake(&mut cs, &model).await?;
            s.serve_one(&mut cs).await
        },
        async move {
            let mut c = ClientSession::handshake(&mut cc, &ClientConfig::default()).await?;
            let before = cc.meter().total("offline/").sent;
            let short = c.infer(&mut cc, &[0u64; 5]).await.err();
            let wide = c.infer(&mut cc, &vec![1u64 << 40; 3 * 64]).await.err();
            assert_eq!(cc.meter().total("offline/").sent, before);
            c.close(&mut cc).await?;
            Ok::<_, Error>((short, wide))
        }
    );
    assert!(s.unwrap().is_none(), "the server sees a polite close");
    let (short, wide) = c.unwrap();
    assert!(
        matches!(short, Some(Error::BadInput(ref m)) if m.contains("input of 5 values")),
        "{short:?}"
    );
    assert!(
        matches!(wide, Some(Error::BadInput(ref m)) if m.contains("not reduced")),
        "{wide:?}"
    );
}

proptest::proptest! {
    // A fixed seed: the cases are the same on every run, so a failure replays.
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 4,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed_2020),
        ..Default::default()
    })]
    /// Random weights, inputs and per-pixel masks on a small network: always
    /// bit-exact, in both activation modes.
    #[test]
    fn random_masks_and_weights_are_bit_exact(seed in 0u64..1_000_000, density in 0u32..=4) {
        let model = model_for("2x2x2x(m=2,phi=1-1-1-1,input=8,classes=4)", seed, |n| {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let acts: Vec<(String, pi_models::network::Shape)> = n.activations().map(|a| (a.name.clone(), a.shape)).collect();
            for (name, s) in acts {
                let keep: Vec<[usize; 3]> = (0..s.c)
                    .flat_map(|c| (0..s.h).flat_map(move |y| (0..s.w).map(move |x| [c, y, x])))
                    .filter(|_| rng.next_u32() % 4 < density)
                    .collect();
                n.set_pixel_mask(&name, &keep).unwrap();
            }
        });
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        for mode in BOTH {
            rt.block_on(check_exact(&model, 1, seed, mode));
        }
    }
}
