//! A log-bucketed histogram (HDR-style: 64 linear sub-buckets per power of two, ~1.6%
//! precision) of latencies in nanoseconds.

#[derive(Clone)]
pub(crate) struct Hist {
    pub(crate) counts: Vec<u64>,
    pub(crate) n: u64,
    pub(crate) max: u64,
    pub(crate) sum: u128,
}

pub(crate) const SUB: u32 = 6;
pub(crate) const LINEAR: u64 = 2 << SUB; // values below this are exact

impl Hist {
    pub(crate) fn new() -> Hist {
        Hist {
            counts: vec![0; Self::index(u64::MAX) + 1],
            n: 0,
            max: 0,
            sum: 0,
        }
    }
    pub(crate) fn index(v: u64) -> usize {
        if v < LINEAR {
            return v as usize;
        }
        let e = 63 - v.leading_zeros(); // >= SUB + 1
        let sub = (v >> (e - SUB)) & ((1 << SUB) - 1);
        (LINEAR + (e - SUB - 1) as u64 * (1 << SUB) + sub) as usize
    }
    pub(crate) fn value(i: usize) -> u64 {
        let i = i as u64;
        if i < LINEAR {
            return i;
        }
        let e = (i - LINEAR) / (1 << SUB) + SUB as u64 + 1;
        let sub = (i - LINEAR) % (1 << SUB);
        let width = 1u64 << (e - SUB as u64);
        (((1 << SUB) + sub) << (e - SUB as u64)) + width / 2
    }
    pub(crate) fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.n += 1;
        self.max = self.max.max(v);
        self.sum += v as u128;
    }
    pub(crate) fn merge(&mut self, o: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.n += o.n;
        self.max = self.max.max(o.max);
        self.sum += o.sum;
    }
    pub(crate) fn quantile(&self, q: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i).min(self.max);
            }
        }
        self.max
    }
    pub(crate) fn mean(&self) -> u64 {
        if self.n == 0 {
            0
        } else {
            (self.sum / self.n as u128) as u64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Hist;
    #[test]
    fn histogram_buckets_are_monotonic_and_precise() {
        let mut last = 0;
        for v in (0..1_000_000u64).step_by(7).chain([u64::MAX / 2, u64::MAX]) {
            let i = Hist::index(v);
            assert!(i >= last);
            last = i;
            let back = Hist::value(i);
            let err = back.abs_diff(v) as f64 / v.max(1) as f64;
            assert!(err <= 0.016, "{v} -> {i} -> {back}");
        }
        let mut h = Hist::new();
        for v in 1..=1000 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.02, "{p50}");
        assert_eq!(h.quantile(1.0), 1_000_000);
    }
}
