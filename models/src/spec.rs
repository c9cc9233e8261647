//! Network specs: the CIFAR ResNet18 family and DeepReShape's HybReNets
//! (Jha and Reagen, "DeepReShape", TMLR 2024), in the paper's `αxβxγx` notation.
//!
//! Grammar (whitespace ignored, names case-insensitive):
//! ```text
//! spec    := base [ "(" option ("," option)* ")" ]
//! base    := "resnet18" | "hrn-5x5x3x" | "hrn-7x5x2x" | "hrn-6x6x2x" | "hrn-5x7x2x"
//!          | ["hrn-"] INT "x" INT "x" INT "x"
//! option  := "m=" INT | "phi=" INT "-" INT "-" INT "-" INT | "classes=" INT
//!          | "input=" INT | "channels=" INT
//! ```
//! Defaults: `resnet18` has m = 64, every other form m = 16; phi = 2-2-2-2,
//! classes = 100, input = 32 (square H = W), channels = 3.
//! A spec that names a file (see [`crate::model`]) is resolved there, not here.

use crate::error::{Error, Result};
use serde::Serialize;

/// Upper bounds that keep a hostile or mistyped spec from asking for absurd memory.
pub mod limits {
    /// Largest stage width (channels) accepted.
    pub const MAX_CHANNELS: usize = 1 << 14;
    /// Largest input side accepted.
    pub const MAX_INPUT: usize = 1024;
    /// Smallest input side: three stride-2 stages need at least 8 pixels to halve thrice.
    pub const MIN_INPUT: usize = 8;
    /// Largest number of blocks in one stage.
    pub const MAX_DEPTH: usize = 64;
    /// Largest number of classes.
    pub const MAX_CLASSES: usize = 1 << 16;
    /// Largest number of input channels.
    pub const MAX_INPUT_CHANNELS: usize = 64;
    /// Largest number of elements of any one activation tensor.
    pub const MAX_TENSOR: usize = 1 << 26;
}

/// A network of the ResNet18 family: stage widths m, αm, αβm, αβγm, depths φ1..φ4.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NetSpec {
    /// Width multiplier from stage 1 to stage 2.
    pub alpha: usize,
    /// Width multiplier from stage 2 to stage 3.
    pub beta: usize,
    /// Width multiplier from stage 3 to stage 4.
    pub gamma: usize,
    /// Base width (stem output channels and stage 1 width).
    pub m: usize,
    /// Number of BasicBlocks per stage.
    pub phi: [usize; 4],
    /// Number of output classes.
    pub classes: usize,
    /// Input height = width.
    pub input: usize,
    /// Input channels.
    pub channels: usize,
}

/// Names of the presets with their (α, β, γ, m).
pub const PRESETS: [(&str, [usize; 4]); 5] = [
    ("resnet18", [2, 2, 2, 64]),
    ("hrn-5x5x3x", [5, 5, 3, 16]),
    ("hrn-7x5x2x", [7, 5, 2, 16]),
    ("hrn-6x6x2x", [6, 6, 2, 16]),
    ("hrn-5x7x2x", [5, 7, 2, 16]),
];

impl NetSpec {
    /// Parses a spec string (not a model file path).
    pub fn parse(text: &str) -> Result<Self> {
        let s: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        if s.is_empty() {
            return Err(Error::spec(text, "empty spec"));
        }
        let (base, opts) = match s.find('(') {
            Some(i) => {
                let rest = &s[i + 1..];
                let Some(inner) = rest.strip_suffix(')') else {
                    return Err(Error::spec(
                        text,
                        "options must be closed by `)` at the end",
                    ));
                };
                if inner.contains('(') || inner.contains(')') {
                    return Err(Error::spec(text, "nested or stray parentheses"));
                }
                (&s[..i], Some(inner))
            }
            None => {
                if s.contains(')') {
                    return Err(Error::spec(text, "stray `)`"));
                }
                (s.as_str(), None)
            }
        };
        let [alpha, beta, gamma, m] = if let Some((_, p)) = PRESETS.iter().find(|(n, _)| *n == base)
        {
            *p
        } else {
            let body = base.strip_prefix("hrn-").unwrap_or(base);
            match parse_axbxgx(body) {
                Some([a, b, g]) => [a, b, g, 16],
                None => {
                    let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
                    return Err(Error::spec(
                        text,
                        format!(
                            "unknown network `{base}`: expected a preset ({}), the form `αxβxγx` such as `5x5x3x`, or a model file (.toml)",
                            names.join(", ")
                        ),
                    ));
                }
            }
        };
        let mut spec = NetSpec {
            alpha,
            beta,
            gamma,
            m,
            phi: [2; 4],
            classes: 100,
            input: 32,
            channels: 3,
        };
        if let Some(opts) = opts {
            spec.apply_options(text, opts)?;
        }
        spec.validate()
            .map_err(|reason| Error::spec(text, reason))?;
        Ok(spec)
    }

    fn apply_options(&mut self, text: &str, opts: &str) -> Result<()> {
        if opts.is_empty() {
            return Ok(());
        }
        let mut seen: Vec<&str> = Vec::new();
        for opt in opts.split(',') {
            let Some((key, value)) = opt.split_once('=') else {
                return Err(Error::spec(
                    text,
                    format!("option `{opt}` is not of the form key=value"),
                ));
            };
            if seen.contains(&key) {
                return Err(Error::spec(text, format!("option `{key}` given twice")));
            }
            seen.push(key);
            let num = |v: &str| -> Result<usize> {
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Error::spec(
                        text,
                        format!("option `{key}`: `{v}` is not a positive integer"),
                    ));
                }
                v.parse::<usize>()
                    .map_err(|_| Error::spec(text, format!("option `{key}`: `{v}` is too large")))
            };
            match key {
                "m" => self.m = num(value)?,
                "classes" => self.classes = num(value)?,
                "input" => self.input = num(value)?,
                "channels" => self.channels = num(value)?,
                "phi" => {
                    let parts: Vec<&str> = value.split('-').collect();
                    if parts.len() != 4 {
                        return Err(Error::spec(
                            text,
                            format!("phi=`{value}`: expected four depths a-b-c-d"),
                        ));
                    }
                    for (i, p) in parts.iter().enumerate() {
                        self.phi[i] = num(p)?;
                    }
                }
                _ => {
                    return Err(Error::spec(
                        text,
                        format!("unknown option `{key}` (known: m, phi, classes, input, channels)"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks ranges; returns a human-readable reason on failure.
    fn validate(&self) -> Result<(), String> {
        use limits::*;
        for (name, v) in [
            ("α", self.alpha),
            ("β", self.beta),
            ("γ", self.gamma),
            ("m", self.m),
        ] {
            if v == 0 {
                return Err(format!(
                    "{name} must be at least 1 (zero widths are meaningless)"
                ));
            }
        }
        let widths = self
            .checked_widths()
            .ok_or_else(|| format!("stage widths exceed {MAX_CHANNELS} channels"))?;
        if widths.iter().any(|&w| w > MAX_CHANNELS) {
            return Err(format!(
                "stage widths {widths:?} exceed {MAX_CHANNELS} channels"
            ));
        }
        for (i, &d) in self.phi.iter().enumerate() {
            if d == 0 || d > MAX_DEPTH {
                return Err(format!(
                    "phi{} = {d}: every stage needs between 1 and {MAX_DEPTH} blocks",
                    i + 1
                ));
            }
        }
        if self.classes == 0 || self.classes > MAX_CLASSES {
            return Err(format!(
                "classes = {}: must be between 1 and {MAX_CLASSES}",
                self.classes
            ));
        }
        if self.channels == 0 || self.channels > MAX_INPUT_CHANNELS {
            return Err(format!(
                "channels = {}: must be between 1 and {MAX_INPUT_CHANNELS}",
                self.channels
            ));
        }
        if self.input < MIN_INPUT {
            return Err(format!(
                "input = {}: too small for three stride-2 stages (need at least {MIN_INPUT})",
                self.input
            ));
        }
        if self.input > MAX_INPUT {
            return Err(format!("input = {}: larger than {MAX_INPUT}", self.input));
        }
        let sides = self.sides();
        for s in 0..4 {
            if widths[s].saturating_mul(sides[s]).saturating_mul(sides[s]) > MAX_TENSOR {
                return Err(format!(
                    "stage {} activations exceed {MAX_TENSOR} elements",
                    s + 1
                ));
            }
        }
        Ok(())
    }

    fn checked_widths(&self) -> Option<[usize; 4]> {
        let w1 = self.m;
        let w2 = w1.checked_mul(self.alpha)?;
        let w3 = w2.checked_mul(self.beta)?;
        let w4 = w3.checked_mul(self.gamma)?;
        Some([w1, w2, w3, w4])
    }

    /// Stage widths m, αm, αβm, αβγm.
    pub fn widths(&self) -> [usize; 4] {
        // Validated specs never overflow; saturate for hand-built ones.
        let w2 = self.m.saturating_mul(self.alpha);
        let w3 = w2.saturating_mul(self.beta);
        [self.m, w2, w3, w3.saturating_mul(self.gamma)]
    }

    /// Feature-map side of each stage (stage 1 keeps the input side; stages 2-4 halve, rounding up).
    pub fn sides(&self) -> [usize; 4] {
        let s1 = self.input;
        let s2 = conv_out(s1, 3, 2, 1);
        let s3 = conv_out(s2, 3, 2, 1);
        [s1, s2, s3, conv_out(s3, 3, 2, 1)]
    }

    /// Canonical text of this spec, parseable by [`NetSpec::parse`].
    pub fn canonical(&self) -> String {
        format!(
            "{}x{}x{}x(m={},phi={}-{}-{}-{},classes={},input={},channels={})",
            self.alpha,
            self.beta,
            self.gamma,
            self.m,
            self.phi[0],
            self.phi[1],
            self.phi[2],
            self.phi[3],
            self.classes,
            self.input,
            self.channels
        )
    }
}

impl std::fmt::Display for NetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// Output side of a convolution with square kernel `k`, stride `s`, padding `p`.
pub fn conv_out(side: usize, k: usize, s: usize, p: usize) -> usize {
    (side + 2 * p).saturating_sub(k) / s + 1
}

fn parse_axbxgx(body: &str) -> Option<[usize; 3]> {
    let body = body.strip_suffix('x')?;
    let parts: Vec<&str> = body.split('x').collect();
    if parts.len() != 3 {
        return None;
    }
    let mut out = [0usize; 3];
    for (o, p) in out.iter_mut().zip(&parts) {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *o = p.parse().ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets() {
        let r = NetSpec::parse("resnet18").unwrap();
        assert_eq!(r.widths(), [64, 128, 256, 512]);
        assert_eq!(r.sides(), [32, 16, 8, 4]);
        assert_eq!(
            (r.classes, r.input, r.channels, r.phi),
            (100, 32, 3, [2, 2, 2, 2])
        );
        let h = NetSpec::parse("HRN-5x5x3x").unwrap();
        assert_eq!(h.widths(), [16, 80, 400, 1200]);
        assert_eq!(
            NetSpec::parse("hrn-7x5x2x").unwrap().widths(),
            [16, 112, 560, 1120]
        );
        assert_eq!(
            NetSpec::parse("hrn-6x6x2x").unwrap().widths(),
            [16, 96, 576, 1152]
        );
        assert_eq!(
            NetSpec::parse("hrn-5x7x2x").unwrap().widths(),
            [16, 80, 560, 1120]
        );
    }

    #[test]
    fn options_and_forms() {
        let s =
            NetSpec::parse(" 5x5x3x( m=4 , phi=1-2-3-4,classes=10,input=16,channels=1)").unwrap();
        assert_eq!(
            s,
            NetSpec {
                alpha: 5,
                beta: 5,
                gamma: 3,
                m: 4,
                phi: [1, 2, 3, 4],
                classes: 10,
                input: 16,
                channels: 1
            }
        );
        assert_eq!(NetSpec::parse(&s.canonical()).unwrap(), s);
        let r = NetSpec::parse("resnet18(m=16,input=16)").unwrap();
        assert_eq!((r.m, r.input, r.alpha), (16, 16, 2));
        assert_eq!(NetSpec::parse("2x3x4x").unwrap().m, 16);
        assert_eq!(
            NetSpec::parse("hrn-2x3x4x()").unwrap().widths(),
            [16, 32, 96, 384]
        );
        // Odd side rounds up at each stride-2 stage: 9 -> 5 -> 3 -> 2.
        assert_eq!(
            NetSpec::parse("2x2x2x(input=9)").unwrap().sides(),
            [9, 5, 3, 2]
        );
    }

    proptest::proptest! {
        /// Any valid spec survives canonical() -> parse().
        #[test]
        fn canonical_round_trip(a in 1usize..8, b in 1usize..8, g in 1usize..4, m in 1usize..32,
                                phi in proptest::array::uniform4(1usize..4), classes in 1usize..200,
                                input in 8usize..64, channels in 1usize..5) {
            let s = NetSpec { alpha: a, beta: b, gamma: g, m, phi, classes, input, channels };
            proptest::prop_assert_eq!(NetSpec::parse(&s.canonical()).unwrap(), s);
        }

        /// Arbitrary text never panics the parser.
        #[test]
        fn parser_never_panics(text in "(resnet18|5x5x3x|hrn-)?[a-z0-9x(),=\\-. αé]{0,40}") {
            let _ = NetSpec::parse(&text);
        }
    }

    #[test]
    fn errors() {
        for (bad, needle) in [
            ("", "empty"),
            ("resnet50", "unknown network"),
            ("5x5x", "unknown network"),
            ("5x5x3", "unknown network"),
            ("5xax3x", "unknown network"),
            ("5x5x3x(m=0)", "m must be"),
            ("0x5x3x", "α must be"),
            ("5x5x3x(m=-4)", "not a positive integer"),
            ("5x5x3x(m=4.5)", "not a positive integer"),
            ("5x5x3x(m=99999999999999999999999)", "too large"),
            ("5x5x3x(phi=2-2-2)", "four depths"),
            ("5x5x3x(phi=2-0-2-2)", "phi2"),
            ("5x5x3x(input=4)", "too small"),
            ("5x5x3x(input=7)", "too small"),
            ("5x5x3x(classes=0)", "classes"),
            ("5x5x3x(channels=0)", "channels"),
            ("5x5x3x(foo=1)", "unknown option"),
            ("5x5x3x(m=4,m=8)", "twice"),
            ("5x5x3x(m4)", "key=value"),
            ("5x5x3x(m=4", "closed"),
            ("5x5x3x)", "stray"),
            ("1000x1000x1000x", "exceed"),
        ] {
            let e = NetSpec::parse(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad:?}: {e}");
        }
    }
}
