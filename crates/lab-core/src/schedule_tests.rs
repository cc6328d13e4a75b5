//! The probe schedule's decisions, one look at a time: when a started guest is looked at,
//! given what the looks at the other guests of the run have seen. The request counts these
//! decisions add up to are held in `engine_failure_tests::the_probe_schedule_keeps_its_measured_economy`;
//! here each rule is held on its own, so a broken rule names itself.

use std::time::Duration;

use super::{Look, Schedule};
use crate::Timeouts;

/// Seconds, to the millisecond (exact, so sums and halves compare equal).
fn s(secs: f64) -> Duration {
    Duration::from_millis((secs * 1000.0).round() as u64)
}

/// Boot hint 10 s, address hint 4 s.
fn schedule() -> Schedule {
    Schedule::new(Timeouts {
        boot_hint: s(10.0),
        address_hint: s(4.0),
        ..Timeouts::default()
    })
}

/// A look as (when, explores); `None` for "hold until another look is done". An
/// exploring look's token is handed back at once unless `keep` says otherwise.
fn look(sched: &Schedule, elapsed: f64, gap: f64) -> Option<(Duration, bool)> {
    match sched.look(s(elapsed), s(gap)) {
        Look::At(at, Some(token)) => {
            sched.explored(token);
            Some((at, true))
        }
        Look::At(at, None) => Some((at, false)),
        Look::Hold => None,
    }
}

#[test]
fn the_first_guest_is_looked_at_after_the_boot_hint_and_the_others_wait_for_that_look() {
    let sched = schedule();
    let Look::At(at, Some(token)) = sched.look(s(0.0), s(1.0)) else {
        panic!("the first look explores")
    };
    assert_eq!(at, s(10.0));
    assert!(matches!(sched.look(s(0.5), s(1.0)), Look::Hold));
    assert!(matches!(sched.look(s(3.0), s(1.0)), Look::Hold));
    sched.explored(token);
    // The look saw nothing yet and said so: the next guest explores after it.
    sched.not_yet(s(10.0));
    assert_eq!(look(&sched, 0.5, 1.0), Some((s(11.0), true)));
}

#[test]
fn a_guest_started_late_is_never_looked_at_in_its_past() {
    let sched = schedule();
    assert_eq!(look(&sched, 25.0, 1.0), Some((s(25.0), true)));
    sched.addressed(s(20.0));
    // Half-way between nothing seen (0) and the first address (20) is 10: already past.
    assert_eq!(look(&sched, 15.0, 1.0), Some((s(15.0), true)));
}

#[test]
fn looks_that_saw_nothing_push_the_next_exploration_past_the_latest_of_them() {
    let sched = schedule();
    sched.not_yet(s(12.0));
    sched.not_yet(s(8.0));
    assert_eq!(look(&sched, 0.0, 1.0), Some((s(13.0), true)));
    sched.not_yet(s(13.0));
    assert_eq!(look(&sched, 0.0, 2.0), Some((s(15.0), true)));
}

#[test]
fn after_the_first_address_the_gap_between_nothing_and_an_address_is_halved() {
    let sched = schedule();
    sched.not_yet(s(12.0));
    sched.addressed(s(20.0));
    let Look::At(at, Some(token)) = sched.look(s(0.0), s(1.0)) else {
        panic!("a wide bracket is explored")
    };
    assert_eq!(at, s(16.0));
    // While one guest explores the bracket, the others are looked at when the first
    // address came: they do not wait.
    assert_eq!(look(&sched, 0.0, 1.0), Some((s(20.0), false)));
    sched.explored(token);
    sched.not_yet(s(16.0));
    assert_eq!(look(&sched, 0.0, 1.0), Some((s(18.0), true)));
}

#[test]
fn the_earliest_address_counts_and_a_later_one_does_not_move_it() {
    let sched = schedule();
    sched.not_yet(s(19.0));
    sched.addressed(s(20.0));
    sched.addressed(s(30.0));
    // 19..20 is within a sixteenth of 20: no more exploring, everyone looks at 20.
    assert_eq!(look(&sched, 0.0, 1.0), Some((s(20.0), false)));
    sched.addressed(s(19.5));
    assert_eq!(look(&sched, 0.0, 1.0), Some((s(19.5), false)));
}

#[test]
fn a_bracket_just_wider_than_a_sixteenth_is_still_explored() {
    let sched = schedule();
    sched.not_yet(s(14.9));
    sched.addressed(s(16.0));
    // 1.1 s of 16 s is more than a sixteenth (1 s).
    assert_eq!(look(&sched, 0.0, 1.0), Some((s(15.45), true)));
    let narrow = schedule();
    narrow.not_yet(s(15.0));
    narrow.addressed(s(16.0));
    // Exactly a sixteenth: narrow enough.
    assert_eq!(look(&narrow, 0.0, 1.0), Some((s(16.0), false)));
}

#[test]
fn nothing_seen_after_the_first_address_does_not_move_the_bracket() {
    let sched = schedule();
    sched.addressed(s(20.0));
    // A slow guest still without an address at 25 s says nothing about the others.
    sched.not_yet(s(25.0));
    sched.not_yet(s(20.0));
    assert_eq!(look(&sched, 0.0, 1.0), Some((s(10.0), true)));
}

#[test]
fn a_guest_past_the_first_address_is_looked_at_again_one_gap_later() {
    let sched = schedule();
    sched.addressed(s(20.0));
    assert_eq!(look(&sched, 20.0, 3.0), Some((s(23.0), false)));
    assert_eq!(look(&sched, 31.0, 8.0), Some((s(39.0), false)));
}

#[test]
fn gaps_start_at_a_quarter_of_the_address_hint_and_end_at_the_longer_hint() {
    let sched = schedule();
    assert_eq!(sched.first_gap(), s(1.0));
    assert_eq!(sched.max_gap(), s(10.0));
    let dhcp_slow = Schedule::new(Timeouts {
        boot_hint: s(5.0),
        address_hint: s(30.0),
        ..Timeouts::default()
    });
    assert_eq!(dhcp_slow.first_gap(), s(7.5));
    assert_eq!(dhcp_slow.max_gap(), s(30.0));
    // Hints of zero (a simulator at a huge time scale) never make a busy loop.
    let zero = Schedule::new(Timeouts {
        boot_hint: Duration::ZERO,
        address_hint: Duration::ZERO,
        ..Timeouts::default()
    });
    assert_eq!(zero.first_gap(), Duration::from_millis(1));
    assert_eq!(zero.max_gap(), Duration::from_millis(10));
}

#[test]
fn guests_held_behind_an_exploring_look_are_woken_when_it_is_done() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let sched = schedule();
    let Look::At(_, Some(token)) = sched.look(s(0.0), s(1.0)) else {
        panic!("the first look explores")
    };
    let mut woken = std::pin::pin!(sched.changed.notified());
    woken.as_mut().enable();
    let mut cx = Context::from_waker(Waker::noop());
    assert_eq!(woken.as_mut().poll(&mut cx), Poll::Pending);
    sched.explored(token);
    assert_eq!(woken.as_mut().poll(&mut cx), Poll::Ready(()));
    assert!(matches!(sched.look(s(0.0), s(1.0)), Look::At(_, Some(_))));
}
