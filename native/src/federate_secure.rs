//! `kiln federate join`'s part in a securely aggregated round: advertise fresh keys, send the
//! sealed shares, send the update masked, reveal what the server needs to unmask the sum —
//! the server never sees this client's update itself. A round the server starts again (a step
//! fell short of the threshold) is left; the next check-in says what comes next.

use crate::federate_http::{Api, ok};
use kiln::federated::LocalUpdate;
use kiln::federated::secure::{
    Member, RoundSecrets, SealedShare, SecureRoundSettings, masked_model_update,
};
use kiln::model::SavedModel;
use kiln::{KilnError, Result};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A federation's secure-aggregation settings, as `join` hands them to a client.
#[derive(Debug, Clone, Copy)]
pub struct SecureJoin {
    /// The shares needed to remove a client's masks.
    pub threshold: usize,
    /// How long each step waits for the clients (s).
    pub phase_secs: u64,
    /// The norm updates are clipped to.
    pub clip_norm: f64,
}

impl SecureJoin {
    /// The settings in `join`'s answer, when the federation aggregates securely.
    pub fn from_join(joined: &Value) -> Option<Self> {
        let s = joined.get("secureAggregation").filter(|s| !s.is_null())?;
        Some(Self {
            threshold: s["threshold"].as_u64()? as usize,
            phase_secs: s["phaseSecs"].as_u64()?,
            clip_norm: s["clipNorm"].as_f64()?,
        })
    }
}

/// How a client's part in a secure round ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Took {
    /// Its revealed shares are in: the round can be unmasked with its update.
    Part,
    /// The round moved on or started again without it.
    Left(String),
}

/// One securely aggregated round, from this client's side.
struct Round<'a> {
    api: &'a Api,
    path: String,
    participant: &'a str,
    tried: i64,
    patience: Duration,
}

impl Round<'_> {
    /// Polls `GET path` until it is `ready`; `None` when the round was started again or moved on.
    fn poll(&self, step: &str) -> Result<Option<Value>> {
        let started = Instant::now();
        loop {
            let response = self.api.get(&format!("{}/{step}", self.path))?;
            if response.status() == StatusCode::CONFLICT {
                return Ok(None);
            }
            let answer = self.api.json(response)?;
            if answer["try"].as_i64() != Some(self.tried) {
                return Ok(None);
            }
            if answer["ready"] == true {
                return Ok(Some(answer));
            }
            if started.elapsed() > self.patience {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// `POST path/step` with a JSON body; `false` when the server says the step is over (409).
    fn post(&self, step: &str, body: &Value) -> Result<bool> {
        let response = self.api.post_json(&format!("{}/{step}", self.path), body)?;
        if response.status() == StatusCode::CONFLICT {
            return Ok(false);
        }
        ok(response)?;
        Ok(true)
    }
}

fn parse<T: serde::de::DeserializeOwned>(value: &Value, what: &str) -> Result<T> {
    serde_json::from_value(value.clone())
        .map_err(|e| KilnError::Internal(format!("the server's {what} is unreadable: {e}")))
}

/// Takes part in round `round` with `update`, trained from `global`.
pub fn take_part(
    api: &Api,
    fed: &str,
    round: i64,
    participant: &str,
    settings: SecureJoin,
    global: &SavedModel,
    update: &LocalUpdate,
) -> Result<Took> {
    let left = |why: &str| Ok(Took::Left(why.to_string()));
    let mut secrets = RoundSecrets::generate()?;
    let path = format!("/v1/federations/{fed}/rounds/{round}/secure");
    let response = api.post_json(
        &format!("{path}/keys"),
        &json!({"participant": participant, "keys": secrets.public_keys()}),
    )?;
    if response.status() == StatusCode::CONFLICT {
        return left("the round's roster was fixed before this client's keys arrived");
    }
    let tried = api.json(response)?["try"].as_i64().unwrap_or(0);
    let step = Round {
        api,
        path,
        participant,
        tried,
        // The roster waits for the round's slowest trainer; later steps for phaseSecs each.
        patience: Duration::from_secs(settings.phase_secs.saturating_mul(4) + 3600),
    };
    let Some(roster) = step.poll("roster")? else {
        return left("the round started again before its roster was fixed");
    };
    let members: Vec<Member> = parse(&roster["members"], "roster")?;
    let context = roster["context"]
        .as_str()
        .unwrap_or_default()
        .as_bytes()
        .to_vec();
    let Some(me) = members
        .iter()
        .find(|m| m.participant == participant)
        .map(|m| m.index)
    else {
        return left("this client is not in the roster");
    };
    let sealed = secrets.seal_shares(me, &members, settings.threshold, &context)?;
    if !step.post(
        "shares",
        &json!({"participant": participant, "shares": sealed}),
    )? {
        return left("the shares were relayed before this client's arrived");
    }
    let Some(inbox) = step.poll(&format!("inbox?participant={participant}"))? else {
        return left("the round started again while the shares were relayed");
    };
    let sharer_indices: Vec<u8> = parse(&inbox["sharers"], "sharers")?;
    if !sharer_indices.contains(&me) {
        return left("this client's shares did not go out in time");
    }
    let sharers: Vec<Member> = members
        .into_iter()
        .filter(|m| sharer_indices.contains(&m.index))
        .collect();
    let shares: Vec<SealedShare> = parse(&inbox["shares"], "inbox")?;
    let masked = masked_model_update(
        &secrets,
        me,
        &sharers,
        SecureRoundSettings {
            threshold: settings.threshold,
            clip_norm: settings.clip_norm,
        },
        (global, &update.model),
        update.examples,
        &context,
    )?;
    if !send_masked(
        step.api,
        fed,
        round,
        step.participant,
        update.examples,
        masked,
    )? {
        return left("the round moved on before the masked update arrived");
    }
    let Some(survived) = step.poll("survivors")? else {
        return left("the round started again before its survivors were known");
    };
    let survivors: Vec<u8> = parse(&survived["survivors"], "survivors")?;
    let revealed = secrets.reveal(
        me,
        &shares,
        &sharers,
        &survivors,
        settings.threshold,
        &context,
    )?;
    if !step.post(
        "reveal",
        &json!({"participant": participant, "revealed": revealed}),
    )? {
        return left("the round moved on before this client's shares were revealed");
    }
    Ok(Took::Part)
}

/// Sends the masked update to the round's updates; `false` when the round took no more (409).
fn send_masked(
    api: &Api,
    fed: &str,
    round: i64,
    participant: &str,
    examples: u64,
    bytes: Vec<u8>,
) -> Result<bool> {
    let url = format!(
        "{}/v1/federations/{fed}/rounds/{round}/updates?participant={participant}&examples={examples}",
        api.base
    );
    let response = api.send("sending the masked update", |c| {
        c.post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes.clone())
    })?;
    if response.status() == StatusCode::CONFLICT {
        return Ok(false);
    }
    ok(response)?;
    Ok(true)
}
