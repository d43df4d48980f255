//! `corridor simulate` in CI: many seeds hold every invariant, a seed replays to the same
//! digest, and a planted bug is caught within a few seeds (and printed with its trail).
//!
//! Seeds and sizes are fixed, so a failure here replays exactly with
//! `corridor simulate --seed S --payments N` (add `--plant-bug …` for the planted test).

use corridor::simulation::{Options, PlantedBug, Summary, run};

/// Payments per seed in the sweep (each a few hundred commits, crashes and faults included).
const PAYMENTS: u64 = 250;
/// Seeds in the sweep.
const SEEDS: u64 = 40;

fn simulate(opts: Options) -> Summary {
    run(opts).expect("the simulation runs")
}

#[test]
fn every_seed_of_the_sweep_holds_every_invariant() {
    let mut totals = [0u64; 4];
    for seed in 1..=SEEDS {
        let s = simulate(Options::new(seed, PAYMENTS));
        assert!(s.passed(), "seed {seed} broke an invariant:\n{s}");
        assert!(
            s.payments_checked > 0 && s.checks > s.payments_checked,
            "{s}"
        );
        let st = &s.stats;
        totals[0] +=
            st.crashes_before_commit + st.crashes_after_commit + st.crashes_in_provider_call;
        totals[1] += st.races_cancel + st.races_steal + st.races_webhook;
        totals[2] += st.cancels_won;
        totals[3] += st.client_replays;
    }
    // The sweep exercised what it is for: crashes, races, won cancels and replays happened.
    assert!(
        totals.iter().all(|&n| n > 0),
        "crashes, races, cancels, replays: {totals:?}"
    );
}

#[test]
fn a_seed_replays_to_the_same_digest_and_counts() {
    let a = simulate(Options::new(4242, 400));
    let b = simulate(Options::new(4242, 400));
    assert!(a.passed(), "{a}");
    assert_eq!(a.digest, b.digest, "first run:\n{a}\nsecond run:\n{b}");
    assert_eq!(a.stats, b.stats);
    assert_eq!(a.by_state, b.by_state);
    let other = simulate(Options::new(4243, 400));
    assert_ne!(a.digest, other.digest, "another seed, another run");
}

#[test]
fn skipping_the_onramp_claim_is_caught_within_ten_seeds_with_its_trail() {
    let caught = (1..=10).find_map(|seed| {
        let mut opts = Options::new(seed, PAYMENTS);
        opts.plant = Some(PlantedBug::SkipOnrampClaim);
        let s = simulate(opts);
        (!s.passed()).then_some((seed, s))
    });
    let (seed, s) = caught.expect("the planted bug went unnoticed for 10 seeds");
    let v = s.violation.as_ref().expect("a violation");
    assert_eq!(
        v.invariant, "a cancelled payment moved no money",
        "seed {seed}:\n{s}"
    );
    // The trail, from the replay, shows the cancel winning while the onramp was bought.
    let trail = s.trail.join("\n");
    assert!(trail.contains("provider started Onramp"), "{trail}");
    assert!(trail.contains("merchant cancel → 200"), "{trail}");
    assert!(trail.contains("PENDING → CANCELLED"), "{trail}");
    // And the same seed without the bug holds.
    let clean = simulate(Options::new(seed, PAYMENTS));
    assert!(clean.passed(), "{clean}");
}

/// The command prints the summary and exits non-zero on a broken invariant.
#[test]
fn the_command_exits_non_zero_when_an_invariant_breaks() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args([
            "simulate",
            "--seed",
            "1",
            "--seeds",
            "10",
            "--payments",
            "250",
        ])
        .args(["--plant-bug", "skip-onramp-claim"])
        .output()
        .expect("corridor runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("INVARIANT BROKEN"), "{stdout}");
    assert!(
        stdout.contains("replay with: corridor simulate --seed"),
        "{stdout}"
    );

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(["simulate", "--crash-rate", "1.5"])
        .output()
        .expect("corridor runs");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--crash-rate"));
}
