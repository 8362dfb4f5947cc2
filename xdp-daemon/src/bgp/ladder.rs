//! The escalation ladder, as a pure state machine fed once a second with
//! "is the node overloaded now": level 0 is XDP alone; an overload that
//! lasts `sustain` climbs to FlowSpec; one that outlasts the FlowSpec rule
//! by `rtbh_after` climbs to RTBH (if enabled); `hold_down` after the last
//! overloaded second, everything comes down at once.
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// synguard in XDP only.
    #[default]
    Local,
    /// A FlowSpec rule per target at the upstream.
    Flowspec,
    /// FlowSpec and a blackhole route per target.
    Rtbh,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Local => "local",
            Level::Flowspec => "flowspec",
            Level::Rtbh => "rtbh",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub sustain: Duration,
    pub rtbh: Option<Duration>,
    pub hold_down: Duration,
}

/// Times are seconds on a monotonic clock.
#[derive(Clone, Debug, Default)]
pub struct Ladder {
    level: Level,
    /// Since when the node has been overloaded without a break.
    over_since: Option<u64>,
    /// The last second the node was overloaded.
    last_over: Option<u64>,
    /// When the current level was reached.
    level_since: u64,
}

impl Ladder {
    pub fn level(&self) -> Level {
        self.level
    }

    /// Takes one observation; returns the level to be at now.
    pub fn step(&mut self, now: u64, overloaded: bool, timing: Timing) -> Level {
        if overloaded {
            self.last_over = Some(now);
            self.over_since.get_or_insert(now);
        } else {
            self.over_since = None;
        }
        let held = |since: u64, d: Duration| now.saturating_sub(since) >= d.as_secs();
        let next = match self.level {
            Level::Local => match self.over_since {
                Some(since) if held(since, timing.sustain) => Level::Flowspec,
                _ => Level::Local,
            },
            level => {
                if self.last_over.is_none_or(|t| held(t, timing.hold_down)) {
                    Level::Local
                } else if level == Level::Flowspec
                    && let (Some(after), Some(since)) = (timing.rtbh, self.over_since)
                    && held(since.max(self.level_since), after)
                {
                    Level::Rtbh
                } else {
                    level
                }
            }
        };
        if next != self.level {
            self.level = next;
            self.level_since = now;
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timing = Timing {
        sustain: Duration::from_secs(3),
        rtbh: Some(Duration::from_secs(5)),
        hold_down: Duration::from_secs(10),
    };

    fn run(ladder: &mut Ladder, from: u64, to: u64, over: bool, timing: Timing) -> Level {
        let mut level = ladder.level();
        for now in from..to {
            level = ladder.step(now, over, timing);
        }
        level
    }

    #[test]
    fn a_short_burst_stays_local() {
        let mut l = Ladder::default();
        assert_eq!(run(&mut l, 0, 3, true, T), Level::Local);
        assert_eq!(run(&mut l, 3, 4, false, T), Level::Local);
        assert_eq!(
            run(&mut l, 4, 6, true, T),
            Level::Local,
            "the count restarts"
        );
    }

    #[test]
    fn climbs_to_flowspec_then_rtbh_then_comes_down_after_the_hold_down() {
        let mut l = Ladder::default();
        assert_eq!(run(&mut l, 0, 4, true, T), Level::Flowspec, "after 3 s");
        assert_eq!(run(&mut l, 4, 8, true, T), Level::Flowspec);
        assert_eq!(
            run(&mut l, 8, 9, true, T),
            Level::Rtbh,
            "5 s after FlowSpec"
        );
        assert_eq!(run(&mut l, 9, 18, false, T), Level::Rtbh, "held down");
        assert_eq!(run(&mut l, 18, 19, false, T), Level::Local, "10 s after");
    }

    #[test]
    fn relief_by_flowspec_never_reaches_rtbh() {
        let mut l = Ladder::default();
        run(&mut l, 0, 4, true, T);
        // Relieved, with a brief overload now and then.
        for start in (4..40).step_by(4) {
            run(&mut l, start, start + 3, false, T);
            assert_ne!(run(&mut l, start + 3, start + 4, true, T), Level::Rtbh);
        }
    }

    #[test]
    fn without_rtbh_it_stops_at_flowspec() {
        let timing = Timing { rtbh: None, ..T };
        let mut l = Ladder::default();
        assert_eq!(run(&mut l, 0, 100, true, timing), Level::Flowspec);
    }
}
