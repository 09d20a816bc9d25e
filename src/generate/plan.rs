//! Deterministic, time-ordered work units for generators of time-stamped rows.
//!
//! Drawing N uniform times and sorting them is the same distribution as first splitting
//! N over the days with a multinomial draw (weights = seconds in each day) and then drawing
//! each day's rows uniformly inside it. The second form lets every unit be built on its own,
//! in time order, by any thread, from `(seed, unit id)` alone: the rows are the same whatever
//! the thread count, and the units can be cut into slices of whole days that are written one
//! after another (see [`write_slices`]).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Binomial, Distribution};

const SECONDS_PER_DAY: i64 = 86_400;

/// One independently generated slice of a dataset: `rows` rows with times in
/// `[start, end]` (Unix seconds, inclusive), drawn from the RNG stream `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit {
    pub id: u64,
    pub start: i64,
    pub end: i64,
    pub rows: usize,
}

impl Unit {
    /// The unit's random number generator: a function of the seed and the unit id only.
    pub fn rng(&self, seed: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(self.id);
        rng
    }
}

/// Splits `rows` uniformly distributed times over `[start, end]` into day slices of at most
/// `max_unit_rows` rows, in time order.
pub fn time_sliced_units(
    start: i64,
    end: i64,
    rows: u64,
    seed: u64,
    max_unit_rows: usize,
) -> Vec<Unit> {
    assert!(end >= start && max_unit_rows > 0);
    let mut days = Vec::new();
    let mut day_start = start;
    while day_start <= end {
        let day_end = ((day_start.div_euclid(SECONDS_PER_DAY) + 1) * SECONDS_PER_DAY - 1).min(end);
        days.push((day_start, day_end));
        day_start = day_end + 1;
    }

    // Multinomial split by successive binomial draws on a stream no unit uses.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(u64::MAX);
    let mut remaining_rows = rows;
    let mut remaining_seconds = (end - start + 1) as f64;
    let mut units = Vec::with_capacity(days.len() + (rows as usize / max_unit_rows));
    for (day_start, day_end) in days {
        let seconds = (day_end - day_start + 1) as f64;
        let p = (seconds / remaining_seconds).min(1.0);
        let day_rows = if p >= 1.0 {
            remaining_rows
        } else {
            Binomial::new(remaining_rows, p)
                .expect("0 <= p < 1")
                .sample(&mut rng)
        };
        remaining_rows -= day_rows;
        remaining_seconds -= seconds;
        let mut left = day_rows as usize;
        while left > 0 {
            let take = left.min(max_unit_rows);
            units.push(Unit {
                id: units.len() as u64,
                start: day_start,
                end: day_end,
                rows: take,
            });
            left -= take;
        }
    }
    units
}

/// Cuts `units` into consecutive ranges of about `budget` rows, cutting between time windows
/// (days) so that each day's rows go to one write, unless a day alone exceeds twice the budget.
/// Each range becomes one partitioned `COPY`, so DuckDB buffers at most one range at a time.
pub fn write_slices(units: &[Unit], budget: u64) -> Vec<std::ops::Range<usize>> {
    let mut slices = Vec::new();
    let (mut first, mut rows) = (0, 0u64);
    for (i, unit) in units.iter().enumerate() {
        let new_window = i > 0 && unit.start != units[i - 1].start;
        if rows > 0 && (rows >= budget && new_window || rows >= 2 * budget) {
            slices.push(first..i);
            (first, rows) = (i, 0);
        }
        rows += unit.rows as u64;
    }
    if first < units.len() {
        slices.push(first..units.len());
    }
    slices
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_slices_cover_every_unit_once_and_cut_between_days() {
        let units = time_sliced_units(0, 30 * SECONDS_PER_DAY - 1, 300_000, 1, 2048);
        let slices = write_slices(&units, 50_000);
        assert_eq!(slices.first().unwrap().start, 0);
        assert_eq!(slices.last().unwrap().end, units.len());
        assert!(slices.windows(2).all(|w| w[0].end == w[1].start));
        for s in &slices[..slices.len() - 1] {
            let rows: usize = units[s.clone()].iter().map(|u| u.rows).sum();
            assert!((50_000..50_000 + 12_000).contains(&rows), "{rows}");
            assert_ne!(
                units[s.end - 1].start,
                units[s.end].start,
                "cut between days"
            );
        }
        // One huge day is still cut, at twice the budget.
        let day = time_sliced_units(0, SECONDS_PER_DAY - 1, 100_000, 1, 2048);
        assert!(write_slices(&day, 10_000).len() >= 4);
        assert_eq!(write_slices(&[], 10), Vec::<std::ops::Range<usize>>::new());
    }

    #[test]
    fn rows_add_up_and_units_are_in_time_order_within_days() {
        let start = 1_672_531_200; // 2023-01-01
        let end = start + 10 * SECONDS_PER_DAY - 1;
        let units = time_sliced_units(start, end, 100_000, 7, 2048);
        assert_eq!(units.iter().map(|u| u.rows as u64).sum::<u64>(), 100_000);
        assert!(units.windows(2).all(|w| w[0].start <= w[1].start));
        assert!(units
            .iter()
            .all(|u| u.rows <= 2048 && u.end - u.start == SECONDS_PER_DAY - 1));
        // ~10,000 a day; a multinomial split stays well within 5% of that.
        for day in 0..10 {
            let n: usize = units
                .iter()
                .filter(|u| u.start == start + day * SECONDS_PER_DAY)
                .map(|u| u.rows)
                .sum();
            assert!((9_500..=10_500).contains(&n), "day {day}: {n}");
        }
    }

    #[test]
    fn same_seed_same_plan_other_seed_other_plan() {
        let a = time_sliced_units(0, 50 * SECONDS_PER_DAY, 10_000, 1, 2048);
        assert_eq!(
            a,
            time_sliced_units(0, 50 * SECONDS_PER_DAY, 10_000, 1, 2048)
        );
        assert_ne!(
            a,
            time_sliced_units(0, 50 * SECONDS_PER_DAY, 10_000, 2, 2048)
        );
    }

    #[test]
    fn partial_first_and_last_days() {
        // The last day has 51 of the range's 86,351 seconds: about 59 of 100,000 rows.
        let units = time_sliced_units(100, SECONDS_PER_DAY + 50, 100_000, 3, 2048);
        assert_eq!(units.first().unwrap().start, 100);
        let last = units.last().unwrap();
        assert_eq!(
            (last.start, last.end),
            (SECONDS_PER_DAY, SECONDS_PER_DAY + 50)
        );
        assert!((20..=120).contains(&last.rows), "{}", last.rows);
        assert_eq!(units.iter().map(|u| u.rows).sum::<usize>(), 100_000);
    }
}
