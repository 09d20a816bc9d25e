//! The twenty hourly measurements of a wifi device, each with its own plausible distribution
//! and a daily load cycle by the device's local solar hour (busiest around 20:00).
//!
//! Each device's values come from a generator seeded by (seed, hour, site) alone, so an hour
//! is the same whichever thread builds which devices, and in whatever order.

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal, Poisson, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;

pub const COUNT: usize = 20;

/// What `metric_<i>` measures, for the README and `telemetry status`.
pub const MEANINGS: [&str; COUNT] = [
    "signal strength, dBm",
    "signal-to-noise ratio, dB",
    "latency, ms",
    "jitter, ms",
    "packet loss, %",
    "download throughput, Mbit/s",
    "upload throughput, Mbit/s",
    "connected clients",
    "CPU load, %",
    "memory used, %",
    "temperature, °C",
    "uptime, hours",
    "channel utilization, %",
    "retransmissions, %",
    "data downloaded, MB",
    "data uploaded, MB",
    "DNS lookup time, ms",
    "noise floor, dBm",
    "transmit power, dBm",
    "airtime used, %",
];

/// Mixes the three keys into one seed (splitmix64 finalizer on each step).
fn mix(seed: u64, hour: i64, site: i64) -> u64 {
    let mut z = seed;
    for v in [hour as u64, site as u64] {
        z = (z ^ v).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
    }
    z
}

/// Two decimals, as the devices report them.
fn r2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The measurements of one device in one hour. `hour` counts hours since the Unix epoch.
pub fn device(seed: u64, hour: i64, site: i64, longitude: f64) -> [f64; COUNT] {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(mix(seed, hour, site));
    let normal = |rng: &mut Xoshiro256PlusPlus, mean: f64, sd: f64| {
        mean + sd * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, rng)
    };
    let lognormal = |rng: &mut Xoshiro256PlusPlus, median: f64, sigma: f64| {
        median * (sigma * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, rng)).exp()
    };
    // A percentage: the logistic of a normal, so it stays within 0..100 with a clear mode.
    let percent = |rng: &mut Xoshiro256PlusPlus, centre: f64, spread: f64| {
        let z = normal(rng, centre, spread);
        100.0 / (1.0 + (-z).exp())
    };
    let local_hour = (hour.rem_euclid(24) as f64 + longitude / 15.0).rem_euclid(24.0);
    // 0.1 at 08:00 local, 1.0 at 20:00.
    let load = 0.55 + 0.45 * (std::f64::consts::TAU * (local_hour - 20.0) / 24.0).cos();
    let clients = Poisson::new(1.0 + 14.0 * load).map_or(0.0, |p| p.sample(&mut rng));
    let normal_temp = Normal::new(40.0 + 8.0 * load, 4.0).map_or(40.0, |n| n.sample(&mut rng));
    [
        r2(normal(&mut rng, -62.0, 7.0).clamp(-100.0, -30.0)),
        r2(normal(&mut rng, 28.0, 6.0).clamp(0.0, 60.0)),
        r2(lognormal(&mut rng, 15.0 + 12.0 * load, 0.45)),
        r2(lognormal(&mut rng, 3.0, 0.6)),
        r2(lognormal(&mut rng, 0.2 + 0.4 * load, 1.0).min(100.0)),
        r2(lognormal(&mut rng, 220.0 - 90.0 * load, 0.5)),
        r2(lognormal(&mut rng, 35.0 - 12.0 * load, 0.5)),
        clients,
        r2(percent(&mut rng, -2.0 + 1.5 * load, 0.6)),
        r2(percent(&mut rng, 0.4, 0.5)),
        r2(normal_temp),
        r2(rng.random_range(0.0..2000.0)),
        r2(percent(&mut rng, -2.2 + 2.0 * load, 0.7)),
        r2(lognormal(&mut rng, 1.5, 0.7).min(100.0)),
        r2(lognormal(&mut rng, 150.0 + 600.0 * load, 0.9)),
        r2(lognormal(&mut rng, 25.0 + 90.0 * load, 0.9)),
        r2(lognormal(&mut rng, 14.0, 0.4)),
        r2(normal(&mut rng, -95.0, 2.5)),
        r2(normal(&mut rng, 20.0, 1.5).clamp(0.0, 30.0)),
        r2(percent(&mut rng, -1.5 + 1.8 * load, 0.6)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_hour_is_a_function_of_its_keys() {
        assert_eq!(device(7, 440_000, 12, -90.0), device(7, 440_000, 12, -90.0));
        assert_ne!(device(7, 440_000, 12, -90.0), device(7, 440_001, 12, -90.0));
        assert_ne!(device(7, 440_000, 12, -90.0), device(7, 440_000, 13, -90.0));
        assert_ne!(device(8, 440_000, 12, -90.0), device(7, 440_000, 12, -90.0));
    }

    #[test]
    fn metrics_follow_their_distributions_and_the_daily_cycle() {
        let hour = 438_300; // 2020-01-01T12 UTC: 06:00 solar time at 90°W
        let sample = |h: i64, i: usize| -> f64 {
            (0..20_000).map(|s| device(1, h, s, -90.0)[i]).sum::<f64>() / 20_000.0
        };
        let signal = sample(hour, 0);
        assert!((-63.0..-61.0).contains(&signal), "{signal}");
        for s in 0..2_000 {
            let m = device(1, hour, s, -90.0);
            assert!(m.iter().all(|v| v.is_finite()));
            assert!(
                (-100.0..=-30.0).contains(&m[0]) && (0.0..=100.0).contains(&m[4]) && m[5] > 0.0
            );
        }
        // Clients peak in the evening (02:00 UTC is 20:00 at 90°W) and ebb in the morning.
        let evening = sample(hour + 14, 7);
        let morning = sample(hour, 7);
        assert!(
            evening > 2.0 * morning,
            "evening {evening}, morning {morning}"
        );
    }
}
