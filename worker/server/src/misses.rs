//! Typed class codes that matched nothing. Only the six-letter code is
//! guessable, so a client whose look-ups keep missing is refused a while.
//! One rule, whether the misses are kept by one process (`classes.rs`) or
//! across gateways (the cluster's quotas): the times of a client's recent
//! misses, in milliseconds since the epoch, oldest first.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::status::ServiceError;

/// Look-ups that found no class, per client and `LOOKUP_PERIOD`, before
/// that client's look-ups are refused until the oldest miss is that old.
///
/// Sized for a class of thirty behind one school address, typing a code on
/// phones at the start of a lesson: sixty typos in ten minutes pass. A
/// guesser from one address gets 60 x 144 = 8,640 guesses a day; codes are
/// six of 31 characters (887,503,681 of them), so with 1,000 classes open a
/// guess finds one with odds of 1 in 887,504, and an even chance of one hit
/// takes about 615,000 guesses: 71 days.
pub const MISSES_PER_PERIOD: usize = 60;
pub const LOOKUP_PERIOD: Duration = Duration::from_secs(600);

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How long a client with these `misses` must wait at `now` before it may
/// look again (`None`: it may now).
pub fn wait(misses: &[u64], now: u64) -> Option<Duration> {
    let period = LOOKUP_PERIOD.as_millis() as u64;
    // Oldest first: the first recent one is the oldest still counted.
    let oldest = recent(misses, now).next()?;
    (recent(misses, now).count() >= MISSES_PER_PERIOD)
        .then(|| Duration::from_millis(period - now.saturating_sub(oldest)))
}

/// The refusal of a client with these `misses` at `now`, if it must wait.
pub fn check(misses: &[u64], now: u64) -> Result<(), ServiceError> {
    match wait(misses, now) {
        // Whole seconds, rounded up: never "0 s".
        Some(wait) => Err(ServiceError::TooManyMisses {
            wait_seconds: (wait.as_millis() as u64).div_ceil(1000),
        }),
        None => Ok(()),
    }
}

/// Counts a miss at `now`: misses out of the period are dropped and the
/// latest `MISSES_PER_PERIOD` kept.
pub fn record(misses: &mut Vec<u64>, now: u64) {
    misses.retain(|at| is_recent(*at, now));
    misses.push(now);
    let extra = misses.len().saturating_sub(MISSES_PER_PERIOD);
    misses.drain(..extra);
}

/// Whether a client with these `misses` has any still counted at `now`.
pub fn any_recent(misses: &[u64], now: u64) -> bool {
    recent(misses, now).next().is_some()
}

fn recent(misses: &[u64], now: u64) -> impl Iterator<Item = u64> + '_ {
    misses.iter().copied().filter(move |at| is_recent(*at, now))
}

fn is_recent(at: u64, now: u64) -> bool {
    now.saturating_sub(at) < LOOKUP_PERIOD.as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_refused_while_its_recent_misses_fill_the_period() {
        let now = 10_000_000;
        let period = LOOKUP_PERIOD.as_millis() as u64;
        // The oldest 10 s short of a period ago, the others a second apart.
        let mut misses: Vec<u64> = (0..MISSES_PER_PERIOD as u64 - 1)
            .map(|i| now - period + 10_000 + i * 1_000)
            .collect();
        assert_eq!(wait(&misses, now), None, "one miss short");
        record(&mut misses, now - 1_000);
        assert_eq!(
            wait(&misses, now),
            Some(Duration::from_secs(10)),
            "until the oldest is a period old"
        );
        assert!(matches!(
            check(&misses, now),
            Err(ServiceError::TooManyMisses { wait_seconds: 10 })
        ));
        // A miss this very millisecond waits the whole period, not longer.
        let just_now = vec![now; MISSES_PER_PERIOD];
        assert!(matches!(
            check(&just_now, now),
            Err(ServiceError::TooManyMisses { wait_seconds }) if wait_seconds == LOOKUP_PERIOD.as_secs()
        ));
        assert_eq!(wait(&misses, now + 10_000), None, "old misses lapse");
    }

    #[test]
    fn only_the_latest_misses_are_kept() {
        let mut misses = vec![0, 1];
        for at in 100_000..100_000 + 2 * MISSES_PER_PERIOD as u64 {
            record(&mut misses, at);
        }
        assert_eq!(misses.len(), MISSES_PER_PERIOD);
        assert_eq!(
            misses.last(),
            Some(&(100_000 + 2 * MISSES_PER_PERIOD as u64 - 1))
        );
        let period = LOOKUP_PERIOD.as_millis() as u64;
        assert!(!any_recent(&misses, 100_000 + period + 1_000));
    }
}
