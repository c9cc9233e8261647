//! Boolean circuits for one activation, a small builder, and their cleartext twin.
//!
//! A [`Circuit`] is a straight-line list of gates over wires. Wires are
//! assigned to a small number of *slots* at build time (a wire's slot is
//! reused once the wire is dead), so that garbling a chunk of activations gate
//! by gate keeps its labels in cache.
//!
//! Inputs of one instance:
//! - `a`: l bits held by the garbler but known only online (the server's share);
//!   ordinary secret wires, labels sent online.
//! - `b`: l bits held by the evaluator (the client's share); labels by OT.
//! - `K`: l bits known to the garbler at garbling time (derived from the pad
//!   p). They are never circuit structure: a gate that uses one of them is
//!   either a free XOR (the garbler flips the zero label, invisible to the
//!   evaluator) or a garbler half-gate (one ciphertext, Zahur-Rosulek-Evans
//!   2015, section 3.1), so the evaluator's work does not depend on p.
//!
//! Outputs: the low bits are ordinary wires decoded with their lsb. The high
//! bits of both circuits are `(K >> low) + c mod 2^(l - low)` for a single
//! secret carry wire `c`, so they are decoded through a two-row table keyed by
//! the label of `c` (see `garble.rs`): a few bits instead of a gate per bit.

use super::{ActivationParams, Scheme};

/// Index of a slot in the label working buffer.
pub(crate) type Slot = u32;

/// One gate, with its inputs and output already mapped to slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// Load bit `bit` of the garbler's online input `a`.
    InGarbler { bit: u8, out: Slot },
    /// Load bit `bit` of the evaluator's input `b`.
    InEvaluator { bit: u8, out: Slot },
    /// `out = x ^ y` (free).
    Xor { x: Slot, y: Slot, out: Slot },
    /// `out = !x` (free: the garbler flips the zero label).
    Not { x: Slot, out: Slot },
    /// `out = x ^ K[bit]` (free).
    XorKnown { x: Slot, bit: u8, out: Slot },
    /// `out = x & y`: two ciphertexts (half-gates) or three half-ciphertexts
    /// and 5 control bits (three-halves); uses hash indices `h .. h + k` for
    /// the scheme's `k` ([`Scheme::hashes_per_and`]).
    And { x: Slot, y: Slot, out: Slot, h: u32 },
    /// `out = x & K[bit]`: garbler half-gate, one ciphertext; hash index `h`.
    AndKnown { x: Slot, bit: u8, out: Slot, h: u32 },
}

/// Which activation a circuit computes (see [`reference()`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActivationKind {
    /// `ReLU(trunc(a + b)) + p mod 2^l`.
    Relu,
    /// `trunc(a + b) + p mod 2^l` (a position whose ReLU is culled).
    Truncate,
}

/// The plaintext formula every activation circuit must match:
/// `z = a + b mod 2^l`, `t = (signed(z) >> f) mod 2^l` (arithmetic shift),
/// `ReLU` keeps `t` if it is non-negative, and the pad `p` is added mod 2^l.
pub fn reference(kind: ActivationKind, params: ActivationParams, a: u64, b: u64, p: u64) -> u64 {
    let l = params.l();
    let mask = params.mask();
    let z = a.wrapping_add(b) & mask;
    // Sign-extend the l-bit value to i64, shift arithmetically, reduce.
    let signed = ((z << (64 - l)) as i64) >> (64 - l);
    let t = ((signed >> params.f()) as u64) & mask;
    let y = match kind {
        ActivationKind::Relu if signed < 0 => 0,
        _ => t,
    };
    y.wrapping_add(p) & mask
}

/// A garbling-ready circuit for one activation over Z_2^l.
///
/// Built once per (kind, l, f) and shared by every layer; garbling material is
/// fresh per use.
#[derive(Clone, Debug)]
pub struct Circuit {
    kind: ActivationKind,
    params: ActivationParams,
    scheme: Scheme,
    pub(crate) ops: Vec<Op>,
    pub(crate) slots: usize,
    /// Slots of output bits `0..low_out.len()`, decoded by lsb.
    pub(crate) low_out: Vec<Slot>,
    /// Slot of the carry wire that selects the high output bits.
    pub(crate) top_carry: Slot,
    /// Hash index of the high-bits table.
    pub(crate) top_h: u32,
    /// `K = p + known_offset mod 2^l`.
    pub(crate) known_offset: u64,
    and_gates: usize,
    half_gates: usize,
}

impl Circuit {
    /// The circuit for `kind` at `params`, garbled with [`Scheme::DEFAULT`].
    pub fn new(kind: ActivationKind, params: ActivationParams) -> Self {
        Self::with_scheme(kind, params, Scheme::DEFAULT)
    }

    /// The circuit for `kind` at `params`, garbled with `scheme`.
    pub fn with_scheme(kind: ActivationKind, params: ActivationParams, scheme: Scheme) -> Self {
        match kind {
            ActivationKind::Relu => Self::build_relu(params, scheme),
            ActivationKind::Truncate => Self::build_truncate(params, scheme),
        }
    }

    /// `ReLU(trunc(a + b)) + p mod 2^l` with (l - 1) + (l - f - 1) + (l - f - 2)
    /// AND gates and one garbler half-gate (84 in all at l = 37, f = 12).
    ///
    /// Steps: a ripple-carry adder that computes only the sum bits `f..l`
    /// (the low sum bits of `a + b` are shifted away, only their carries
    /// matter); the shift is wiring; ReLU masks the `k = l - f - 1` value bits
    /// of the truncated result with `!sign` (a non-negative truncated value
    /// has its top `f + 1` bits zero); the pad is added with a carry chain
    /// whose pad bits are garbler-known, and the top `f + 1` output bits are
    /// `(p >> k) + carry` read from a two-row table. [`Scheme::DEFAULT`].
    pub fn relu(params: ActivationParams) -> Self {
        Self::build_relu(params, Scheme::DEFAULT)
    }

    fn build_relu(params: ActivationParams, scheme: Scheme) -> Self {
        let (l, f) = (params.l() as usize, params.f() as usize);
        let k = l - f - 1;
        let mut bld = Builder::new(scheme);
        let s = add_shares_high_bits(&mut bld, l, f);
        let sign = s[l - f - 1];
        let nsign = bld.not(sign);
        let y: Vec<Wire> = (0..k).map(|j| bld.and(s[j], nsign)).collect();
        let (low, carry) = add_known(&mut bld, &y);
        bld.finish(ActivationKind::Relu, params, low, carry, 0)
    }

    /// `trunc(a + b) + p mod 2^l` with (l - 1) + (l - f - 1) AND gates and one
    /// garbler half-gate (61 in all at l = 37, f = 12).
    ///
    /// The truncated value is the signed (l - f)-bit number `T` sign-extended.
    /// Flipping its top bit (free) gives the unsigned `U = T + 2^(l-f-1)`, so
    /// `T + p = U + K` with `K = p - 2^(l-f-1)`; U has no bits above l - f,
    /// so the top f output bits are `(K >> (l - f)) + carry`.
    /// [`Scheme::DEFAULT`].
    pub fn truncate(params: ActivationParams) -> Self {
        Self::build_truncate(params, Scheme::DEFAULT)
    }

    fn build_truncate(params: ActivationParams, scheme: Scheme) -> Self {
        let (l, f) = (params.l() as usize, params.f() as usize);
        let m = l - f;
        let mut bld = Builder::new(scheme);
        let mut u = add_shares_high_bits(&mut bld, l, f);
        u[m - 1] = bld.not(u[m - 1]);
        let (low, carry) = add_known(&mut bld, &u);
        let offset = (1u64 << (m - 1)).wrapping_neg() & params.mask();
        bld.finish(ActivationKind::Truncate, params, low, carry, offset)
    }

    /// The activation this circuit computes.
    pub fn kind(&self) -> ActivationKind {
        self.kind
    }

    /// Its ring parameters.
    pub fn params(&self) -> ActivationParams {
        self.params
    }

    /// How its AND gates are garbled.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Number of AND gates with two secret inputs (32 bytes each with
    /// half-gates, 24 bytes and 5 control bits with three-halves).
    pub fn and_gates(&self) -> usize {
        self.and_gates
    }

    /// Number of AND gates with one garbler-known input (one ciphertext each).
    pub fn half_gates(&self) -> usize {
        self.half_gates
    }

    /// Bytes of the garbled gates per instance: the AND gates' ciphertexts
    /// and one 16-byte ciphertext per half-gate, in circuit order.
    pub fn gate_bytes(&self) -> usize {
        self.scheme.and_bytes() * self.and_gates + 16 * self.half_gates
    }

    /// Bytes of control bits per instance (three-halves: 5 per AND gate,
    /// packed; half-gates: none).
    pub fn control_bytes(&self) -> usize {
        (self.scheme.control_bits_per_and() * self.and_gates).div_ceil(8)
    }

    /// Output bits decoded by label lsb.
    pub fn low_bits(&self) -> usize {
        self.low_out.len()
    }

    /// Output bits read from the two-row table keyed by the carry wire.
    pub fn top_bits(&self) -> usize {
        self.params.l() as usize - self.low_out.len()
    }

    /// Bytes of decoding information per instance: one lsb bit per low output
    /// bit and two rows of `top_bits` bits, packed.
    pub fn decode_bytes(&self) -> usize {
        (self.low_bits() + 2 * self.top_bits()).div_ceil(8)
    }

    /// Garbled-table bytes per instance: gates, control bits and decoding
    /// information.
    pub fn table_bytes(&self) -> usize {
        self.gate_bytes() + self.control_bytes() + self.decode_bytes()
    }

    /// Every hash index an instance uses, in circuit order: the scheme's
    /// indices per AND gate, one per half-gate, one for the decoding table.
    /// The tweak of a hash adds its index to the instance's tweak base, so
    /// these must be distinct and below [`super::HASHES_PER_INSTANCE`].
    #[cfg(test)]
    pub(crate) fn hash_indices(&self) -> Vec<u32> {
        let k = self.scheme.hashes_per_and();
        let mut v: Vec<u32> = self
            .ops
            .iter()
            .flat_map(|op| match *op {
                Op::And { h, .. } => (h..h + k).collect(),
                Op::AndKnown { h, .. } => vec![h],
                _ => vec![],
            })
            .collect();
        v.push(self.top_h);
        v
    }

    /// The garbler-known input K for pad `p`.
    pub(crate) fn known(&self, p: u64) -> u64 {
        p.wrapping_add(self.known_offset) & self.params.mask()
    }

    /// Cleartext evaluation of the circuit itself, gate by gate (the plaintext
    /// twin of garbling): must equal [`reference()`].
    pub fn eval_clear(&self, a: u64, b: u64, p: u64) -> u64 {
        let kk = self.known(p);
        let mut v = vec![false; self.slots];
        let bit = |x: u64, i: u8| (x >> i) & 1 == 1;
        for op in &self.ops {
            match *op {
                Op::InGarbler { bit: i, out } => v[out as usize] = bit(a, i),
                Op::InEvaluator { bit: i, out } => v[out as usize] = bit(b, i),
                Op::Xor { x, y, out } => v[out as usize] = v[x as usize] ^ v[y as usize],
                Op::Not { x, out } => v[out as usize] = !v[x as usize],
                Op::XorKnown { x, bit: i, out } => v[out as usize] = v[x as usize] ^ bit(kk, i),
                Op::And { x, y, out, .. } => v[out as usize] = v[x as usize] & v[y as usize],
                Op::AndKnown { x, bit: i, out, .. } => v[out as usize] = v[x as usize] & bit(kk, i),
            }
        }
        let mut out = 0u64;
        for (j, s) in self.low_out.iter().enumerate() {
            out |= (v[*s as usize] as u64) << j;
        }
        out | self.top_value(kk, v[self.top_carry as usize])
    }

    /// The high output bits (already shifted into place) for carry `c`.
    pub(crate) fn top_value(&self, known: u64, c: bool) -> u64 {
        let low = self.low_bits() as u32;
        ((known >> low).wrapping_add(c as u64) << low) & self.params.mask()
    }
}

/// Ripple-carry adder of the garbler input `a` and the evaluator input `b`
/// that returns only the sum bits `f..l` (l - 1 AND gates: every carry is
/// needed, the sum bits below f are not).
fn add_shares_high_bits(bld: &mut Builder, l: usize, f: usize) -> Vec<Wire> {
    let mut sums = Vec::with_capacity(l - f);
    let mut carry: Option<Wire> = None;
    for i in 0..l {
        let a = bld.input_garbler(i as u8);
        let b = bld.input_evaluator(i as u8);
        match carry {
            None => {
                if i >= f {
                    sums.push(bld.xor(a, b));
                }
                if i + 1 < l {
                    carry = Some(bld.and(a, b));
                }
            }
            Some(c) => {
                // carry' = c ^ ((a ^ c) & (b ^ c)); sum = (a ^ c) ^ b.
                let ac = bld.xor(a, c);
                if i >= f {
                    sums.push(bld.xor(ac, b));
                }
                if i + 1 < l {
                    let bc = bld.xor(b, c);
                    let t = bld.and(ac, bc);
                    carry = Some(bld.xor(c, t));
                }
            }
        }
    }
    sums
}

/// Adds the garbler-known K (bits `0..y.len()`) to the secret `y`: returns the
/// sum bits and the carry out of the top bit. The first carry `y_0 & K_0` is a
/// garbler half-gate; later carries are `maj(y_j, K_j, c_j) = c_j ^ ((y_j ^ c_j) &
/// (K_j ^ c_j))`, one AND each, with `K_j` entering through a free XOR.
fn add_known(bld: &mut Builder, y: &[Wire]) -> (Vec<Wire>, Wire) {
    let mut out = Vec::with_capacity(y.len());
    let mut carry: Option<Wire> = None;
    for (j, &yj) in y.iter().enumerate() {
        let bit = j as u8;
        match carry {
            None => {
                out.push(bld.xor_known(yj, bit));
                carry = Some(bld.and_known(yj, bit));
            }
            Some(c) => {
                let yc = bld.xor(yj, c);
                out.push(bld.xor_known(yc, bit));
                let kc = bld.xor_known(c, bit);
                let t = bld.and(yc, kc);
                carry = Some(bld.xor(c, t));
            }
        }
    }
    (out, carry.expect("at least one value bit (f <= l - 2)"))
}

/// A wire of the builder (before slot allocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Wire(u32);

/// Gates over wires, in order; `finish` maps wires to slots.
struct Builder {
    scheme: Scheme,
    ops: Vec<Op>,
    wires: u32,
    and_gates: usize,
    half_gates: usize,
    hashes: u32,
}

impl Builder {
    fn new(scheme: Scheme) -> Self {
        Self {
            scheme,
            ops: Vec::new(),
            wires: 0,
            and_gates: 0,
            half_gates: 0,
            hashes: 0,
        }
    }
    fn fresh(&mut self) -> Wire {
        self.wires += 1;
        Wire(self.wires - 1)
    }
    fn push(&mut self, op: impl FnOnce(Slot) -> Op) -> Wire {
        let w = self.fresh();
        self.ops.push(op(w.0));
        w
    }
    fn input_garbler(&mut self, bit: u8) -> Wire {
        self.push(|out| Op::InGarbler { bit, out })
    }
    fn input_evaluator(&mut self, bit: u8) -> Wire {
        self.push(|out| Op::InEvaluator { bit, out })
    }
    fn xor(&mut self, x: Wire, y: Wire) -> Wire {
        self.push(|out| Op::Xor {
            x: x.0,
            y: y.0,
            out,
        })
    }
    fn not(&mut self, x: Wire) -> Wire {
        self.push(|out| Op::Not { x: x.0, out })
    }
    fn xor_known(&mut self, x: Wire, bit: u8) -> Wire {
        self.push(|out| Op::XorKnown { x: x.0, bit, out })
    }
    fn and(&mut self, x: Wire, y: Wire) -> Wire {
        let h = self.hashes;
        self.hashes += self.scheme.hashes_per_and();
        self.and_gates += 1;
        self.push(|out| Op::And {
            x: x.0,
            y: y.0,
            out,
            h,
        })
    }
    fn and_known(&mut self, x: Wire, bit: u8) -> Wire {
        let h = self.hashes;
        self.hashes += 1;
        self.half_gates += 1;
        self.push(|out| Op::AndKnown {
            x: x.0,
            bit,
            out,
            h,
        })
    }

    /// Maps wires to slots by liveness (an output never shares a slot with an
    /// input of its own gate) and freezes the circuit.
    fn finish(
        mut self,
        kind: ActivationKind,
        params: ActivationParams,
        low: Vec<Wire>,
        carry: Wire,
        known_offset: u64,
    ) -> Circuit {
        // Index of the last gate reading each wire; outputs stay live to the end.
        let n = self.wires as usize;
        let mut last_use: Vec<Option<usize>> = vec![None; n];
        for (i, op) in self.ops.iter().enumerate() {
            for w in op_inputs(op).into_iter().flatten() {
                last_use[w as usize] = Some(i);
            }
        }
        for w in low.iter().chain(std::iter::once(&carry)) {
            last_use[w.0 as usize] = Some(usize::MAX);
        }
        let mut slot_of = vec![Slot::MAX; n];
        let mut free: Vec<Slot> = Vec::new();
        let mut slots: Slot = 0;
        for i in 0..self.ops.len() {
            let op = self.ops[i];
            let out_wire = op_output(&op);
            let out_slot = free.pop().unwrap_or_else(|| {
                slots += 1;
                slots - 1
            });
            slot_of[out_wire as usize] = out_slot;
            self.ops[i] = remap(op, |w| slot_of[w as usize]);
            for w in op_inputs(&op).into_iter().flatten() {
                let s = slot_of[w as usize];
                if last_use[w as usize] == Some(i) && !free.contains(&s) {
                    free.push(s);
                }
            }
            if last_use[out_wire as usize].is_none() {
                free.push(out_slot);
            }
        }
        let low_out = low.iter().map(|w| slot_of[w.0 as usize]).collect();
        let top_h = self.hashes;
        self.hashes += 1;
        // l <= 64 bounds a circuit to a few hundred hashes per instance.
        assert!(
            self.hashes <= super::HASHES_PER_INSTANCE,
            "hash indices must fit the tweak's hash field"
        );
        Circuit {
            kind,
            params,
            scheme: self.scheme,
            ops: self.ops,
            slots: slots as usize,
            low_out,
            top_carry: slot_of[carry.0 as usize],
            top_h,
            known_offset,
            and_gates: self.and_gates,
            half_gates: self.half_gates,
        }
    }
}

/// Input wires of a gate (builder numbering).
fn op_inputs(op: &Op) -> [Option<Slot>; 2] {
    match *op {
        Op::InGarbler { .. } | Op::InEvaluator { .. } => [None, None],
        Op::Xor { x, y, .. } | Op::And { x, y, .. } => [Some(x), Some(y)],
        Op::Not { x, .. } | Op::XorKnown { x, .. } | Op::AndKnown { x, .. } => [Some(x), None],
    }
}

fn op_output(op: &Op) -> Slot {
    match *op {
        Op::InGarbler { out, .. }
        | Op::InEvaluator { out, .. }
        | Op::Xor { out, .. }
        | Op::Not { out, .. }
        | Op::XorKnown { out, .. }
        | Op::And { out, .. }
        | Op::AndKnown { out, .. } => out,
    }
}

/// The gate with its inputs mapped through `map` and its output through `map` too.
fn remap(op: Op, map: impl Fn(Slot) -> Slot) -> Op {
    match op {
        Op::InGarbler { bit, out } => Op::InGarbler { bit, out: map(out) },
        Op::InEvaluator { bit, out } => Op::InEvaluator { bit, out: map(out) },
        Op::Xor { x, y, out } => Op::Xor {
            x: map(x),
            y: map(y),
            out: map(out),
        },
        Op::Not { x, out } => Op::Not {
            x: map(x),
            out: map(out),
        },
        Op::XorKnown { x, bit, out } => Op::XorKnown {
            x: map(x),
            bit,
            out: map(out),
        },
        Op::And { x, y, out, h } => Op::And {
            x: map(x),
            y: map(y),
            out: map(out),
            h,
        },
        Op::AndKnown { x, bit, out, h } => Op::AndKnown {
            x: map(x),
            bit,
            out: map(out),
            h,
        },
    }
}
