//! Both parties in one process: the decrypted share must equal W·c − s over
//! Z_2^l bit for bit, replies must be circuit private, hostile bytes rejected.

use proptest::prelude::*;
use rand::Rng;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;
use crate::Error;

struct Run {
    plan: LayerPlan,
    want: Vec<u64>,
    got: Vec<u64>,
    noise: Vec<i64>,
    up_bytes: usize,
    down_bytes: usize,
}

fn random_weights(rng: &mut ChaCha20Rng, len: usize, bits: u32) -> Vec<i64> {
    let b = 1i64 << bits;
    (0..len).map(|_| rng.random_range(-b + 1..b)).collect()
}

/// The client's share for a test run: drawn uniformly inside the run, or
/// given (only under `ShareDistribution::Arbitrary`).
#[derive(Clone, Copy)]
enum Share<'a> {
    Uniform,
    Given(&'a [u64]),
}

fn run_layer(shape: LayerShape, weights: &[i64], seed: u64) -> Run {
    run_layer_with(
        HeParams::default(),
        shape,
        weights,
        Share::Uniform,
        None,
        seed,
    )
}

/// One layer, both parties; `mask` overrides the mask the server draws.
fn run_layer_with(
    params: HeParams,
    shape: LayerShape,
    weights: &[i64],
    share: Share<'_>,
    mask: Option<&[u64]>,
    seed: u64,
) -> Run {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let client = HeClient::new(params, &mut rng);
    let pk = PublicKeyMsg::decode(&client.public_key(&mut rng).encode(&params), &params).unwrap();
    let server = HeServer::new(params, &pk).unwrap();
    let plan = LayerPlan::new(params, shape).unwrap();
    let (upload, share) = match share {
        Share::Uniform => {
            let share = UniformShare::random(params, shape.input_len(), &mut rng);
            (
                client.encrypt(&plan, &share, &mut rng).unwrap(),
                share.into_vec(),
            )
        }
        Share::Given(v) => (
            client.encrypt_arbitrary(&plan, v, &mut rng).unwrap(),
            v.to_vec(),
        ),
    };
    let up = upload.encode(&plan);
    let upload = ClientUpload::decode(&up, &plan).unwrap();
    let (reply, mask) = match mask {
        None => {
            let (reply, mask) = server.evaluate(&plan, weights, &upload, &mut rng).unwrap();
            (reply, mask.into_vec())
        }
        Some(m) => (
            server
                .evaluate_with_mask(&plan, weights, m, &upload, &mut rng)
                .unwrap(),
            m.to_vec(),
        ),
    };
    let reply = reply.encode(&plan);
    assert_eq!(reply.len(), ServerReply::encoded_len(&plan));
    let reply = ServerReply::decode(&reply, &plan).unwrap();
    let (got, noise) = client.decrypt_raw(&plan, &reply).unwrap();
    let want = linear_reference(params, &shape, weights, &share, &mask);
    let down_bytes = ServerReply::encoded_len(&plan);
    Run {
        plan,
        want,
        got,
        noise,
        up_bytes: up.len(),
        down_bytes,
    }
}

fn random_layer(shape: LayerShape, seed: u64, wbits: u32) -> Run {
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x5eed);
    let weights = random_weights(&mut rng, shape.weight_len(), wbits);
    run_layer(shape, &weights, seed)
}

fn conv(c_in: usize, c_out: usize, hw: usize, kernel: usize, stride: usize) -> LayerShape {
    LayerShape::Conv(ConvShape {
        c_in,
        c_out,
        h: hw,
        w: hw,
        kernel,
        stride,
        pad: kernel / 2,
    })
}

fn fc(inputs: usize, outputs: usize) -> LayerShape {
    LayerShape::Fc(FcShape { inputs, outputs })
}

fn assert_exact(r: &Run, what: &str) {
    let bad = r.got.iter().zip(&r.want).filter(|(a, b)| a != b).count();
    assert_eq!(
        bad,
        0,
        "{what}: {bad} of {} outputs differ (plan {:?})",
        r.want.len(),
        r.plan.tiling()
    );
}

#[test]
fn single_fc_is_exact() {
    let r = random_layer(fc(5, 3), 1, 12);
    assert_exact(&r, "fc 5->3");
}

#[test]
fn conv_shapes_are_exact() {
    for (i, shape) in [
        conv(3, 4, 8, 3, 1),
        conv(2, 3, 7, 3, 2),
        conv(4, 5, 6, 1, 2),
        conv(3, 2, 5, 1, 1),
    ]
    .into_iter()
    .enumerate()
    {
        let r = random_layer(shape, 10 + i as u64, 12);
        assert_exact(&r, &format!("{shape:?}"));
    }
}

/// Layer shapes of a resnet18-like network at m = 4 on 16x16 inputs, by hand:
/// stem 3->4 at 16x16; stage 1 4->4 at 16x16; stage 2 opens with a strided
/// 4->8 3x3 (16->8) and a 1x1 stride-2 shortcut, then 8->8 at 8x8; stage 3
/// 8->16 (8->4); stage 4 16->32 (4->2); FC over 32·2·2 = 128 inputs to 10.
#[test]
fn resnet18_like_layers_are_exact() {
    let shapes = [
        conv(3, 4, 16, 3, 1),
        conv(4, 4, 16, 3, 1),
        conv(4, 8, 16, 3, 2),
        conv(4, 8, 16, 1, 2),
        conv(8, 8, 8, 3, 1),
        conv(8, 16, 8, 3, 2),
        conv(16, 16, 4, 3, 1),
        conv(16, 32, 4, 3, 2),
        conv(16, 32, 4, 1, 2),
        conv(32, 32, 2, 3, 1),
        fc(32 * 2 * 2, 10),
    ];
    for (i, shape) in shapes.into_iter().enumerate() {
        let r = random_layer(shape, 100 + i as u64, 14);
        assert_exact(&r, &format!("{shape:?}"));
    }
}

/// hrn-5x5x3x at m = 4 (widths 4, 20, 100, 300) on 16x16: the wide late stages
/// and the FC over 300·2·2 = 1200 inputs to 100 classes.
#[test]
fn hrn_5x5x3x_like_layers_are_exact() {
    let shapes = [
        conv(3, 4, 16, 3, 1),
        conv(4, 20, 16, 3, 2),
        conv(4, 20, 16, 1, 2),
        conv(20, 20, 8, 3, 1),
        conv(20, 100, 8, 3, 2),
        conv(100, 100, 4, 3, 1),
        conv(100, 300, 4, 3, 2),
        conv(100, 300, 4, 1, 2),
        conv(300, 300, 2, 3, 1),
        fc(300 * 2 * 2, 100),
    ];
    for (i, shape) in shapes.into_iter().enumerate() {
        let r = random_layer(shape, 200 + i as u64, 12);
        assert_exact(&r, &format!("{shape:?}"));
    }
}

/// Worst case for the noise budget: every weight at the public bound and
/// every share at −2^(l−1), on a wide layer, under the worst-case analysis;
/// and maximal weights with uniform shares under the default analysis.
#[test]
fn extreme_weights_and_shares_are_exact() {
    let arbitrary = HeParams::default().with_shares(params::ShareDistribution::Arbitrary);
    let shape = conv(256, 8, 4, 3, 1);
    let w = (1i64 << params::WEIGHT_BITS) - 1;
    let weights: Vec<i64> = (0..shape.weight_len())
        .map(|i| if i % 3 == 0 { -w } else { w })
        .collect();
    let share = vec![1u64 << 36; shape.input_len()];
    let mask = vec![(1u64 << 37) - 1; shape.output_len()];
    let r = run_layer_with(
        arbitrary,
        shape,
        &weights,
        Share::Given(&share),
        Some(&mask),
        7,
    );
    assert_exact(&r, "extreme");
    let r = run_layer_with(
        arbitrary,
        fc(8192, 3),
        &vec![w; 8192 * 3],
        Share::Given(&vec![1u64 << 36; 8192]),
        Some(&[0, 1, 2]),
        8,
    );
    assert_exact(&r, "extreme fc");
    // Default (uniform shares): a wide layer packed with many outputs per reply.
    let shape = conv(1200, 1200, 2, 3, 1);
    let weights: Vec<i64> = (0..shape.weight_len())
        .map(|i| if i % 2 == 0 { -w } else { w })
        .collect();
    let r = run_layer(shape, &weights, 10);
    // 10 800 weights per output, several outputs per ciphertext, at least
    // the target hiding.
    assert!(r.plan.tiling().1 > 1, "{:?}", r.plan.tiling());
    assert!(r.plan.hiding_bits() >= params::TARGET_HIDING_BITS);
    assert_exact(&r, "wide uniform");
    let measured = r.noise.iter().map(|v| v.unsigned_abs()).max().unwrap() as f64;
    assert!(
        measured < HeParams::default().delta_keep() as f64 / 2.0 / 1.15,
        "noise {measured}"
    );
}

/// A narrower ring (l = 32) uses the same primes with a larger Δ.
#[test]
fn narrower_ring_is_exact() {
    let params = HeParams::new(32).unwrap();
    let shape = conv(5, 7, 6, 3, 2);
    let mut rng = ChaCha20Rng::seed_from_u64(77);
    let m = params.ring_mask();
    let weights = random_weights(&mut rng, shape.weight_len(), 15);
    let r = run_layer_with(params, shape, &weights, Share::Uniform, None, 78);
    assert!(r.want.iter().all(|&v| v <= m));
    assert_exact(&r, "l = 32");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, rng_seed: proptest::test_runner::RngSeed::Fixed(42), ..ProptestConfig::default() })]
    #[test]
    fn random_conv_shapes_are_exact(
        c_in in 1usize..7, c_out in 1usize..7, hw in 1usize..10, k3 in any::<bool>(), s2 in any::<bool>(), seed in any::<u64>()
    ) {
        let kernel = if k3 { 3 } else { 1 };
        let hw = hw.max(kernel - 2 * (kernel / 2));
        let shape = conv(c_in, c_out, hw, kernel, if s2 { 2 } else { 1 });
        let r = random_layer(shape, seed, 16);
        prop_assert_eq!(r.got, r.want);
    }

    #[test]
    fn random_fc_shapes_are_exact(inputs in 1usize..300, outputs in 1usize..40, seed in any::<u64>()) {
        let r = random_layer(fc(inputs, outputs), seed, 16);
        prop_assert_eq!(r.got, r.want);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, rng_seed: proptest::test_runner::RngSeed::Fixed(7), ..ProptestConfig::default() })]
    /// Planner invariants on shapes up to ResNet/HRN size: tiles fit one
    /// polynomial with all output groups, every output is covered exactly
    /// once, and the noise margin holds.
    #[test]
    fn plans_fit_and_cover(c_in in 1usize..600, c_out in 1usize..600, hw_pow in 0u32..6, k3 in any::<bool>(), s2 in any::<bool>()) {
        let hw = 1usize << hw_pow;
        let kernel = if k3 { 3 } else { 1 };
        let shape = conv(c_in, c_out, hw.max(kernel), kernel, if s2 { 2 } else { 1 });
        let p = HeParams::default();
        let plan = LayerPlan::new(p, shape).unwrap();
        let (cb, g, _, _) = plan.tiling();
        prop_assert!(g * cb * plan.hb * plan.wb <= params::POLY_DEGREE);
        prop_assert!(p.fits(g * c_in * kernel * kernel, plan.hiding_bits()));
        prop_assert!(plan.hiding_bits() >= params::TARGET_HIDING_BITS);
        let mut seen = vec![false; shape.output_len()];
        let mut w = Vec::new();
        for tile in 0..plan.tiles() {
            for og in 0..plan.o_groups {
                plan.wanted(tile, og, &mut w);
                prop_assert!(w.windows(2).all(|x| x[0].0 < x[1].0));
                for &(coeff, idx) in &w {
                    prop_assert!(coeff < params::POLY_DEGREE);
                    prop_assert!(!seen[idx]);
                    seen[idx] = true;
                }
            }
        }
        prop_assert!(seen.iter().all(|&s| s));
    }
}

fn mean_var(v: &[i64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var)
}

/// The noise the client can measure must not depend on the weights: zero
/// weights and maximal weights give the same mean and variance within
/// sampling error, and the variance is what the weight-independent terms
/// predict (after the switch to p0 the flood, hidden at the full modulus,
/// is small next to the rounding of c0 and c1).
#[test]
fn reply_noise_does_not_depend_on_weights() {
    let shape = conv(64, 16, 8, 3, 1);
    let w = (1i64 << params::WEIGHT_BITS) - 1;
    let zero = run_layer(shape, &vec![0; shape.weight_len()], 1);
    let big = run_layer(shape, &vec![w; shape.weight_len()], 2);
    assert_exact(&zero, "zero weights");
    assert_exact(&big, "big weights");
    let (m0, v0) = mean_var(&zero.noise);
    let (m1, v1) = mean_var(&big.noise);
    let n = zero.noise.len() as f64;
    // Predicted variance from weight-independent terms alone: the triangular
    // flood of width M has variance (M² − 1)/6, scaled by 1/(p1·p2)²; c0
    // rounding (switch and dropped bits) 2^(2·d0)/12 + 1/12; c1 rounding
    // (2^(2·d1)/12)·‖s‖² with ‖s‖² ≈ 2N/3.
    let flood_var = (zero.plan.flood_bound as f64 / params::dropped_modulus() as f64).powi(2) / 6.0;
    let drop0 = (2f64.powi(2 * params::C0_DROP_BITS as i32) + 1.0) / 12.0;
    let drop1 = 2f64.powi(2 * params::C1_DROP_BITS as i32) / 12.0
        * (2.0 * params::POLY_DEGREE as f64 / 3.0);
    let predicted = flood_var + drop0 + drop1;
    assert!(
        (v0 / predicted - 1.0).abs() < 0.1,
        "predicted {predicted} vs measured {v0}"
    );
    let se = (v0 / n).sqrt();
    assert!((m0 - m1).abs() < 8.0 * se, "means {m0} vs {m1} (se {se})");
    assert!((v0 / v1 - 1.0).abs() < 0.15, "variances {v0} vs {v1}");
}

/// Replies are re-randomised: evaluating the same upload twice gives
/// unrelated c1, and c1 is not the switched a·W for the client's seeded a.
#[test]
fn replies_are_rerandomised() {
    let params = HeParams::default();
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let client = HeClient::new(params, &mut rng);
    let server = HeServer::new(params, &client.public_key(&mut rng)).unwrap();
    // FC 1 -> 1 with weight 1: a·W = a, so the "naive" c1 is the switched a.
    let plan = LayerPlan::new(params, fc(1, 1)).unwrap();
    let share = UniformShare::random(params, 1, &mut rng);
    let upload = client.encrypt(&plan, &share, &mut rng).unwrap();
    let r1 = server
        .evaluate_with_mask(&plan, &[1], &[0], &upload, &mut rng)
        .unwrap();
    let r2 = server
        .evaluate_with_mask(&plan, &[1], &[0], &upload, &mut rng)
        .unwrap();
    assert_eq!(client.decrypt(&plan, &r1).unwrap(), share.as_slice());
    assert_eq!(client.decrypt(&plan, &r2).unwrap(), share.as_slice());
    // Masks drawn by the server are fresh: two evaluations, two masks.
    let (_, m1) = server.evaluate(&plan, &[1], &upload, &mut rng).unwrap();
    let (_, m2) = server.evaluate(&plan, &[1], &upload, &mut rng).unwrap();
    assert_ne!(m1.as_slice(), m2.as_slice());
    let same = r1.c1.iter().zip(&r2.c1).filter(|(a, b)| a == b).count();
    assert!(
        same < 16,
        "{same} equal c1 coefficients across two evaluations"
    );
    let mut a: [Vec<u64>; params::PRIMES] = Default::default();
    arith::expand_a(&upload.seed, 0, &mut a);
    // The input polynomial of an FC 1x1 sits at coefficient 0 and the weight
    // at coefficient 0, so a·W = a; compare with a switched to p0 and
    // rounded as the server would (roughly).
    let switch = server::Switch::new();
    let close = (0..params::POLY_DEGREE)
        .filter(|&j| {
            let naive = switch.apply(std::array::from_fn(|i| a[i][j]), params::C1_DROP_BITS);
            naive.abs_diff(r1.c1[j]) < 4
        })
        .count();
    assert!(close < 16, "{close} c1 coefficients track the seeded a");
}

#[test]
fn hostile_bytes_are_rejected() {
    let params = HeParams::default();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let client = HeClient::new(params, &mut rng);
    let pk_bytes = client.public_key(&mut rng).encode(&params);
    let server = HeServer::new(params, &PublicKeyMsg::decode(&pk_bytes, &params).unwrap()).unwrap();
    let plan = LayerPlan::new(params, conv(2, 2, 4, 3, 1)).unwrap();
    let other = LayerPlan::new(params, conv(2, 3, 4, 3, 1)).unwrap();
    let share = UniformShare::random(params, 2 * 16, &mut rng);
    let up = client
        .encrypt(&plan, &share, &mut rng)
        .unwrap()
        .encode(&plan);
    let peer = |r: Result<ClientUpload, Error>| {
        assert!(matches!(r, Err(Error::PeerMisbehaved(_))), "{:?}", r.err())
    };
    // Wrong size: truncated, extended, empty.
    peer(ClientUpload::decode(&up[..up.len() - 1], &plan));
    peer(ClientUpload::decode(&[up.clone(), vec![0]].concat(), &plan));
    peer(ClientUpload::decode(&[], &plan));
    // Wrong parameter digest (a session at l = 36), version, kind.
    let p36 = HeParams::new(36).unwrap();
    peer(ClientUpload::decode(
        &up,
        &LayerPlan::new(p36, conv(2, 2, 4, 3, 1)).unwrap(),
    ));
    let mut v = up.clone();
    v[4] = 9;
    peer(ClientUpload::decode(&v, &plan));
    // Wrong level (an upload claiming to be switched down to one prime).
    let mut v = up.clone();
    v[6] = 1;
    peer(ClientUpload::decode(&v, &plan));
    peer(ClientUpload::decode(&pk_bytes, &plan));
    // Upload for another layer plan (same length is impossible to rely on; check digest path).
    let up_other = client
        .encrypt(&other, &share, &mut rng)
        .unwrap()
        .encode(&other);
    peer(ClientUpload::decode(&up_other, &plan));
    // A residue ≥ p: set the first packed 55-bit value to all ones.
    let mut v = up.clone();
    for b in &mut v[23 + 48..23 + 48 + 7] {
        *b = 0xff;
    }
    peer(ClientUpload::decode(&v, &plan));
    // Reply side.
    let upload = ClientUpload::decode(&up, &plan).unwrap();
    let reply = server
        .evaluate(&plan, &[1; 36], &upload, &mut rng)
        .unwrap()
        .0
        .encode(&plan);
    assert!(matches!(
        ServerReply::decode(&reply[..reply.len() - 3], &plan),
        Err(Error::PeerMisbehaved(_))
    ));
    assert!(matches!(
        ServerReply::decode(&reply, &other),
        Err(Error::PeerMisbehaved(_))
    ));
    let mut v = reply.clone();
    v[6] = 2;
    assert!(matches!(
        ServerReply::decode(&v, &plan),
        Err(Error::PeerMisbehaved(_))
    ));
    // A c1 value above its bound (all-ones 49-bit field).
    let mut v = reply.clone();
    for b in &mut v[23 + 16..23 + 16 + 7] {
        *b = 0xff;
    }
    assert!(matches!(
        ServerReply::decode(&v, &plan),
        Err(Error::PeerMisbehaved(_))
    ));
    assert!(matches!(
        PublicKeyMsg::decode(&pk_bytes[..100], &params),
        Err(Error::PeerMisbehaved(_))
    ));
    assert!(matches!(
        PublicKeyMsg::decode(&pk_bytes, &p36),
        Err(Error::PeerMisbehaved(_))
    ));
    // Bad local input is the caller's fault.
    assert!(matches!(
        client.encrypt(&plan, &UniformShare::random(params, 31, &mut rng), &mut rng),
        Err(Error::BadInput(_))
    ));
    assert!(matches!(
        client.encrypt(&plan, &UniformShare::random(p36, 32, &mut rng), &mut rng),
        Err(Error::BadInput(_))
    ));
    // Chosen shares are refused under the uniform-share analysis.
    assert!(matches!(
        client.encrypt_arbitrary(&plan, &[1; 32], &mut rng),
        Err(Error::BadInput(_))
    ));
    assert!(matches!(
        server.evaluate(&plan, &[1 << 20; 36], &upload, &mut rng),
        Err(Error::BadInput(_))
    ));
    assert!(matches!(
        server.evaluate(&plan, &[1; 35], &upload, &mut rng),
        Err(Error::BadInput(_))
    ));
    assert!(matches!(
        server.evaluate(&plan, &[i64::MIN; 36], &upload, &mut rng),
        Err(Error::BadInput(_))
    ));
    assert!(matches!(
        server.evaluate_with_mask(&plan, &[1; 36], &[1 << 37; 32], &upload, &mut rng),
        Err(Error::BadInput(_))
    ));
    let arbitrary = HeParams::default().with_shares(params::ShareDistribution::Arbitrary);
    let plan_any = LayerPlan::new(arbitrary, conv(2, 2, 4, 3, 1)).unwrap();
    assert!(matches!(
        HeClient::new(arbitrary, &mut rng).encrypt_arbitrary(&plan_any, &[1 << 37; 32], &mut rng),
        Err(Error::BadInput(_))
    ));
    assert!(matches!(
        server.evaluate(&other, &[1; 54], &upload, &mut rng),
        Err(Error::PeerMisbehaved(_))
    ));
}

#[test]
fn packing_uses_few_ciphertexts() {
    let p = HeParams::default();
    // Late resnet18 layer: 512 channels at 4x4 — several outputs per reply.
    let late = LayerPlan::new(p, conv(512, 512, 4, 3, 1)).unwrap();
    assert!(
        late.tiling().1 >= 2,
        "late layer packs {} outputs per ciphertext",
        late.tiling().1
    );
    assert!(late.reply_cts() <= 512 / 2);
    // Early layer: 64 channels at 32x32; uploads hold at least 2 channels.
    let early = LayerPlan::new(p, conv(64, 64, 32, 3, 1)).unwrap();
    assert!(
        early.upload_cts() <= 44 && early.reply_cts() <= 64,
        "{:?}",
        early.tiling()
    );
    // Upload + reply of one small layer.
    let r = random_layer(conv(3, 4, 8, 3, 1), 3, 8);
    // One upload ciphertext (3 x 50-bit residues) and one reply ciphertext
    // (48-bit c1, 40-bit c0 for 256 outputs).
    assert!(
        r.up_bytes < 160_000 && r.down_bytes < 55_000,
        "{} / {}",
        r.up_bytes,
        r.down_bytes
    );
}

/// Planning is integer-only, so both parties (and every platform) derive the
/// same plan; these golden values catch any drift in the planner or the
/// noise analysis (a disagreement between parties would abort on the digest).
#[test]
fn plans_are_pinned() {
    let p = HeParams::default();
    let late = LayerPlan::new(p, conv(512, 512, 4, 3, 1)).unwrap();
    let early = LayerPlan::new(p, conv(64, 64, 32, 3, 1)).unwrap();
    let fc = LayerPlan::new(p, fc(512 * 16, 100)).unwrap();
    let got: Vec<_> = [&late, &early, &fc]
        .iter()
        .map(|pl| {
            let d = pl.digest();
            (
                pl.tiling(),
                pl.hiding_bits(),
                u64::from_le_bytes(d[..8].try_into().unwrap()),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ((25, 9, 4, 4), 80, 9_471_190_462_186_753_461),
            ((3, 2, 32, 32), 80, 17_698_426_719_895_779_205),
            ((1024, 8, 1, 1), 80, 918_781_483_938_872_862),
        ]
    );
}
