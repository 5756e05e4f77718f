//! The seeded PRNG (SplitMix64 seeding xoshiro256**) and MongoDB-style ObjectIds: every round
//! is a pure function of (seed, course, day, index).

/// One SplitMix64 step (Vigna): advances `state` and returns the next output.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256** seeded through SplitMix64. Only integer and IEEE basic arithmetic is used (no libm),
/// so streams are identical on every platform.
#[derive(Debug, Clone)]
pub struct Rng {
    pub(super) s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        Rng { s: [splitmix64(&mut sm), splitmix64(&mut sm), splitmix64(&mut sm), splitmix64(&mut sm)] }
    }

    /// An independent stream for a tuple of keys (seed, tag, course, day, …).
    pub fn from_parts(parts: &[u64]) -> Self {
        let mut h = 0x243F_6A88_85A3_08D3u64;
        for &p in parts {
            let mut x = h ^ p;
            h = splitmix64(&mut x);
        }
        Rng::new(h)
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n); 0 when n is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform index into a slice of length `n`.
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Approximately standard normal (Irwin–Hall sum of four uniforms, scaled; range ±3.46).
    pub fn normal(&mut self) -> f64 {
        let s = self.f64() + self.f64() + self.f64() + self.f64();
        (s - 2.0) * 1.732_050_807_568_877_2
    }

    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.index(xs.len())]
    }

    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.index(i + 1);
            xs.swap(i, j);
        }
    }
}

/// A MongoDB-style ObjectId: 4-byte big-endian creation time + 8 random bytes, 24 lowercase hex.
pub fn object_id(timestamp: i64, rng: &mut Rng) -> String {
    format!("{:08x}{:016x}", timestamp.clamp(0, u32::MAX as i64) as u32, rng.next_u64())
}

// Stream tags for Rng::from_parts.
pub(super) const TAG_ROUND: u64 = 0x0052_4f55_4e44;
pub(super) const TAG_PLAN: u64 = 0x504c_414e;
pub(super) const TAG_CARRY: u64 = 0x0043_4152_5259;
pub(super) const TAG_DEVICE: u64 = 0x4445_5649_4345;
pub(super) const TAG_DEFECT: u64 = 0x4445_4645_4354;
pub(super) const TAG_WRAP: u64 = 0x5752_4150;
pub(super) const TAG_BADFILE: u64 = 0x0042_4144_4649_4c45;
