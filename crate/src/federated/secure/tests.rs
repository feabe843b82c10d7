//! A whole round of the protocol in memory: clients, a relaying server, dropouts.

use super::*;
use crate::error::KilnError;

const CONTEXT: &[u8] = b"fed-test/round-3/try-0";

/// A client's update and example count.
fn update(client: usize, len: usize) -> (Vec<f32>, u64) {
    let values = (0..len)
        .map(|i| (((i * 31 + client * 17) % 97) as f32 / 97.0 - 0.5) * 0.02)
        .collect();
    (values, 50 + 40 * client as u64)
}

struct Outcome {
    mean: Result<Vec<f32>, KilnError>,
    masked: Vec<(u8, Vec<u64>)>,
    encoded: Vec<Vec<u64>>,
}

/// Runs a round of `clients` with `threshold`; the clients in `drop_after_sharing` share keys
/// and then vanish before sending their masked updates.
fn round(clients: usize, threshold: usize, drop_after_sharing: &[u8], len: usize) -> Outcome {
    let codec = FixedPoint::new(1.0).unwrap();
    let mut secrets: Vec<RoundSecrets> = (0..clients)
        .map(|_| RoundSecrets::generate().unwrap())
        .collect();
    let roster: Vec<Member> = secrets
        .iter()
        .enumerate()
        .map(|(i, s)| Member {
            index: i as u8 + 1,
            participant: format!("p-{i}"),
            keys: s.public_keys(),
        })
        .collect();
    // Step 2: every client seals shares; the server only relays them.
    let mut relayed = Vec::new();
    for (i, s) in secrets.iter_mut().enumerate() {
        relayed.extend(
            s.seal_shares(i as u8 + 1, &roster, threshold, CONTEXT)
                .unwrap(),
        );
    }
    // Step 3: the ones that stay send masked updates.
    let mut masked = Vec::new();
    let mut encoded = Vec::new();
    for (i, s) in secrets.iter().enumerate() {
        let me = i as u8 + 1;
        let (values, examples) = update(i, len);
        let plain = codec.encode(&values, examples);
        encoded.push(plain.clone());
        if drop_after_sharing.contains(&me) {
            continue;
        }
        masked.push((
            me,
            s.masked_input(me, plain, &roster, threshold, CONTEXT)
                .unwrap(),
        ));
    }
    let survivors: Vec<u8> = masked.iter().map(|(i, _)| *i).collect();
    // Step 4: the survivors reveal; the server unmasks.
    let mut revealed = Vec::new();
    for &me in &survivors {
        let inbox: Vec<SealedShare> = relayed.iter().filter(|s| s.to == me).cloned().collect();
        match secrets[me as usize - 1].reveal(me, &inbox, &roster, &survivors, threshold, CONTEXT) {
            Ok(r) => revealed.extend(r),
            Err(e) => {
                return Outcome {
                    mean: Err(e),
                    masked,
                    encoded,
                };
            }
        }
    }
    let total: u64 = survivors
        .iter()
        .map(|&i| FixedPoint::weight(update(i as usize - 1, len).1))
        .sum();
    let mean = unmask_sum(&masked, &roster, &revealed, threshold, CONTEXT)
        .map(|sum| codec.decode(&sum, total));
    Outcome {
        mean,
        masked,
        encoded,
    }
}

/// FedAvg's weighted mean of the clients' updates, in f64.
fn plain_mean(clients: &[usize], len: usize) -> Vec<f64> {
    let total: f64 = clients.iter().map(|&c| update(c, len).1 as f64).sum();
    (0..len)
        .map(|k| {
            clients
                .iter()
                .map(|&c| {
                    let (v, w) = update(c, len);
                    f64::from(v[k]) * w as f64
                })
                .sum::<f64>()
                / total
        })
        .collect()
}

fn assert_close(got: &[f32], want: &[f64]) {
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((f64::from(*g) - w).abs() < 1e-6, "value {k}: {g} vs {w}");
    }
}

#[test]
fn the_unmasked_sum_is_fedavg_within_the_quantisation_bound() {
    let out = round(5, 3, &[], 500);
    assert_close(&out.mean.unwrap(), &plain_mean(&[0, 1, 2, 3, 4], 500));
}

#[test]
fn a_client_that_vanishes_after_sharing_keys_leaves_the_survivors_sum() {
    let out = round(5, 3, &[2], 300);
    assert_close(&out.mean.unwrap(), &plain_mean(&[0, 2, 3, 4], 300));
    let out = round(6, 3, &[1, 6], 200);
    assert_close(&out.mean.unwrap(), &plain_mean(&[1, 2, 3, 4], 200));
}

#[test]
fn fewer_survivors_than_the_threshold_fail_clearly() {
    let out = round(5, 4, &[1, 2], 50);
    let error = out.mean.unwrap_err().to_string();
    assert!(
        error.contains("only 3 clients sent masked updates"),
        "{error}"
    );
}

#[test]
fn what_the_server_sees_of_one_update_is_uncorrelated_with_it() {
    let out = round(4, 3, &[], 4000);
    for (index, masked) in &out.masked {
        let plain = &out.encoded[*index as usize - 1];
        // As signed ring values: the plain update is small, the masked one uniform.
        let xs: Vec<f64> = plain.iter().map(|&v| v as i64 as f64).collect();
        let ys: Vec<f64> = masked.iter().map(|&v| v as i64 as f64).collect();
        let n = xs.len() as f64;
        let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
        let cov: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
        let vx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
        let vy: f64 = ys.iter().map(|y| (y - my).powi(2)).sum();
        let r = cov / (vx.sqrt() * vy.sqrt());
        assert!(r.abs() < 0.08, "client {index}: correlation {r}");
        assert_ne!(masked, plain);
    }
}

#[test]
fn tampered_shares_and_a_stranger_in_the_survivors_are_refused() {
    let mut a = RoundSecrets::generate().unwrap();
    let mut b = RoundSecrets::generate().unwrap();
    let c = RoundSecrets::generate().unwrap();
    let roster: Vec<Member> = [&a, &b, &c]
        .iter()
        .enumerate()
        .map(|(i, s)| Member {
            index: i as u8 + 1,
            participant: format!("p-{i}"),
            keys: s.public_keys(),
        })
        .collect();
    let from_a = a.seal_shares(1, &roster, 2, CONTEXT).unwrap();
    b.seal_shares(2, &roster, 2, CONTEXT).unwrap();
    let mut for_b: Vec<SealedShare> = from_a.into_iter().filter(|s| s.to == 2).collect();
    let flipped = if for_b[0].sealed.starts_with('0') {
        "1"
    } else {
        "0"
    };
    for_b[0].sealed.replace_range(0..1, flipped);
    let error = b
        .reveal(2, &for_b, &roster, &[1, 2], 2, CONTEXT)
        .unwrap_err();
    assert!(error.to_string().contains("do not open"), "{error}");
    let error = b.reveal(2, &[], &roster, &[1, 9], 2, CONTEXT).unwrap_err();
    assert!(error.to_string().contains("never shared keys"), "{error}");
    // Another round's context does not open them either.
    let mut fresh = a.seal_shares(1, &roster, 2, CONTEXT).unwrap();
    fresh.retain(|s| s.to == 2);
    let error = b
        .reveal(2, &fresh, &roster, &[1, 2], 2, b"fed-test/round-4/try-0")
        .unwrap_err();
    assert!(error.to_string().contains("do not open"), "{error}");
}
