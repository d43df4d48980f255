//! `corridor simulate` in CI: many seeds hold every invariant, a seed replays to the same
//! digest, and a planted bug is caught within a few seeds (and printed with its trail).
//!
//! Seeds and sizes are fixed, so a failure here replays exactly with
//! `corridor simulate --seed S --payments N` (add `--plant-bug …` for the planted test).

use corridor::simulation::{Options, PlantedBug, Summary, run};

/// Payments per seed in the sweep and the planted-bug test.
const PAYMENTS: u64 = 500;
/// Seeds in the sweep, run by two `corridor simulate` processes side by side (one per core:
/// runs in one process take turns, since ids come from one process-wide generator).
const SEEDS: u64 = 200;

fn simulate(opts: Options) -> Summary {
    run(opts).expect("the simulation runs")
}

/// Counts summed over the summaries a `corridor simulate` run printed.
fn total(stdout: &str, label: &str, word: &str) -> u64 {
    stdout
        .lines()
        .filter(|l| l.trim_start().starts_with(label))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let i = words.iter().position(|w| w.starts_with(word))?;
            words
                .get(i.checked_sub(1)?)?
                .trim_matches(|c| c == '(' || c == ',')
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[test]
fn every_seed_of_the_sweep_holds_every_invariant() {
    let half = SEEDS / 2;
    let children: Vec<_> = [1, 1 + half]
        .into_iter()
        .map(|from| {
            std::process::Command::new(env!("CARGO_BIN_EXE_corridor"))
                .args(["simulate", "--seed", &from.to_string()])
                .args([
                    "--seeds",
                    &half.to_string(),
                    "--payments",
                    &PAYMENTS.to_string(),
                ])
                .output()
                .expect("corridor runs")
        })
        .collect();
    let mut all = String::new();
    for out in &children {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let failed: Vec<&str> = stdout
            .split("corridor simulate ·")
            .filter(|s| s.contains("INVARIANT BROKEN"))
            .collect();
        assert!(
            out.status.success(),
            "a seed broke an invariant:\n{}\n{}",
            failed.join("\n"),
            String::from_utf8_lossy(&out.stderr)
        );
        all.push_str(&stdout);
    }
    assert_eq!(all.matches("all hold").count() as u64, SEEDS, "{all}");
    // The sweep exercised what it is for.
    for (label, word) in [
        ("crashes", "("),
        ("races", "cancels"),
        ("races", "lease"),
        ("races", "webhooks"),
        ("merchant", "replays"),
        ("merchant", "cancels"),
        ("simulated time", "quotes"),
        ("provider faults", "refusals"),
    ] {
        assert!(
            total(&all, label, word) > 0,
            "no {label} {word} in the sweep"
        );
    }
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

#[test]
fn a_fresh_provider_key_per_attempt_is_caught_within_ten_seeds() {
    let caught = (1..=10).find_map(|seed| {
        let mut opts = Options::new(seed, PAYMENTS);
        opts.plant = Some(PlantedBug::KeyPerAttempt);
        let s = simulate(opts);
        (!s.passed()).then_some((seed, s))
    });
    let (seed, s) = caught.expect("the planted bug went unnoticed for 10 seeds");
    let v = s.violation.as_ref().expect("a violation");
    assert_eq!(
        v.invariant, "each leg initiated at most once",
        "seed {seed}:\n{s}"
    );
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
