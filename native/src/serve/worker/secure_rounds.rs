//! A securely aggregated round's steps on the server, which only relays and counts: the
//! clients' public keys are fixed into a roster (all members advertised, or the round's timeout
//! with enough of them), then the set of clients whose sealed shares went out, then the
//! survivors whose masked updates arrived, then their revealed shares — each step closes when
//! every client of the previous one answered or `phaseSecs` after it, with at least the
//! threshold. Every fixed set is written once (a conditional create in the object store), so
//! servers of a fleet agree on it. All of it lives under the round's try folder: a restarted
//! round starts afresh.

use crate::serve::federations::{FederationPlan, FederationRow, SecureSettings, secure_folder};
use crate::serve::registry::now_ms;
use crate::serve::runner::RunnerContext;
use kiln::federated::secure::{Member, PublicKeys, Revealed, SealedShare};
use kiln::{KilnError, Result};
use serde::{Deserialize, Serialize};

/// A client's advertised keys (step 1).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Advertised {
    /// Its participant id.
    pub participant: String,
    /// Its public keys.
    pub keys: PublicKeys,
}

/// The roster: who advertised keys, with their share points, and the crypto context.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Roster {
    /// Shares needed to remove a client's masks.
    pub threshold: usize,
    /// The members, by index.
    pub members: Vec<Member>,
    /// Bound into every key and ciphertext: `federation/round/try`.
    pub context: String,
    /// When it was fixed (ms).
    pub fixed_at: i64,
}

/// A fixed set of clients (by index): those whose shares went out, or the survivors.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fixed {
    /// The clients' indices.
    pub indices: Vec<u8>,
    /// When it was fixed (ms).
    pub fixed_at: i64,
}

/// Where a securely aggregated round stands.
#[derive(Debug, Clone)]
pub enum Progress {
    /// Steps are still under way.
    Pending,
    /// Every step is done: the round can be unmasked and aggregated.
    Ready(Box<Unmasking>),
    /// A step fell short of the threshold: the round must start again (why).
    Failed(String),
}

/// What the server unmasks a round with.
#[derive(Debug, Clone)]
pub struct Unmasking {
    /// The roster.
    pub roster: Roster,
    /// The clients whose shares went out.
    pub sharers: Vec<Member>,
    /// The survivors' indices.
    pub survivors: Vec<u8>,
    /// Every revealed share.
    pub revealed: Vec<Revealed>,
}

/// The folder of the open try of `row`'s round.
pub fn folder(row: &FederationRow) -> String {
    secure_folder(&row.id, row.round, row.round_tries)
}

/// Reads a JSON object, if there is one.
pub async fn read<T: serde::de::DeserializeOwned>(
    ctx: &RunnerContext,
    key: &str,
) -> Result<Option<T>> {
    match ctx.objects.get(key).await? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| KilnError::Internal(format!("{key}: unreadable: {e}"))),
        None => Ok(None),
    }
}

/// Fixes `key` to `value` unless another server fixed it first; returns what is fixed.
async fn fix<T: Serialize + serde::de::DeserializeOwned>(
    ctx: &RunnerContext,
    key: &str,
    value: T,
) -> Result<T> {
    let bytes = serde_json::to_vec(&value)
        .map_err(|e| KilnError::Internal(format!("encoding {key}: {e}")))?;
    if ctx.objects.put_new(key, bytes.into()).await? {
        return Ok(value);
    }
    read(ctx, key)
        .await?
        .ok_or_else(|| KilnError::Internal(format!("{key} vanished")))
}

/// The sets fixed so far in a round's try folder.
#[derive(Debug, Clone, Default)]
pub struct Fixings {
    /// The roster, once fixed.
    pub roster: Option<Roster>,
    /// The clients whose shares went out, once fixed.
    pub sharers: Option<Fixed>,
    /// The survivors, once fixed.
    pub survivors: Option<Fixed>,
}

/// What is fixed in `folder`.
pub async fn fixings(ctx: &RunnerContext, folder: &str) -> Result<Fixings> {
    Ok(Fixings {
        roster: read(ctx, &format!("{folder}/roster.json")).await?,
        sharers: read(ctx, &format!("{folder}/sharers.json")).await?,
        survivors: read(ctx, &format!("{folder}/survivors.json")).await?,
    })
}

/// The participants with an object under `folder/kind/`.
async fn posted(ctx: &RunnerContext, folder: &str, kind: &str) -> Result<Vec<String>> {
    Ok(ctx
        .objects
        .list(&format!("{folder}/{kind}"))
        .await?
        .into_iter()
        .filter_map(|name| name.strip_suffix(".json").map(str::to_string))
        .collect())
}

/// Whether a step that began at `since` has waited its `phase_secs`.
fn expired(since: i64, settings: &SecureSettings, now: i64) -> bool {
    now - since >= settings.phase_secs.saturating_mul(1000)
}

/// Where a step stands: the clients of the step before (`previous`, fixed at `since`) that
/// answered it close it when all did, or once it has waited `phase_secs` with the threshold.
enum Step {
    /// Some have not answered and there is time left.
    Waiting,
    /// Time is up with this many answers, fewer than the threshold.
    Short(usize),
    /// The step is closed with these clients.
    Done(Vec<u8>),
}

fn step(
    answered: Vec<u8>,
    previous: &[u8],
    since: i64,
    settings: &SecureSettings,
    now: i64,
) -> Step {
    let answered: Vec<u8> = answered
        .into_iter()
        .filter(|i| previous.contains(i))
        .collect();
    if answered.len() < previous.len() && !expired(since, settings, now) {
        Step::Waiting
    } else if answered.len() < settings.threshold {
        Step::Short(answered.len())
    } else {
        Step::Done(answered)
    }
}

/// Moves the round's steps on as far as they can go now, and says where it stands.
pub async fn advance(
    ctx: &RunnerContext,
    row: &FederationRow,
    plan: &FederationPlan,
    settings: &SecureSettings,
) -> Result<Progress> {
    let folder = folder(row);
    let now = now_ms();
    let t = settings.threshold;
    let Some(roster) = fix_roster(ctx, row, plan, settings, &folder, now).await? else {
        return Ok(Progress::Pending);
    };
    if roster.members.len() < t {
        return Ok(Progress::Failed(format!(
            "only {} clients advertised keys before the round's timeout; secure aggregation \
             needs {t}",
            roster.members.len()
        )));
    }
    let sharers_key = format!("{folder}/sharers.json");
    let sharers = match read::<Fixed>(ctx, &sharers_key).await? {
        Some(fixed) => fixed,
        None => {
            let sent = posted(ctx, &folder, "shares").await?;
            let all: Vec<u8> = roster.members.iter().map(|m| m.index).collect();
            let answered = indices_of(&roster.members, &sent);
            let indices = match step(answered, &all, roster.fixed_at, settings, now) {
                Step::Waiting => return Ok(Progress::Pending),
                Step::Short(n) => {
                    return Ok(Progress::Failed(format!(
                        "only {n} of the roster's {} clients sent their shares; secure \
                         aggregation needs {t}",
                        roster.members.len()
                    )));
                }
                Step::Done(indices) => indices,
            };
            let fixed_at = now;
            fix(ctx, &sharers_key, Fixed { indices, fixed_at }).await?
        }
    };
    let survivors_key = format!("{folder}/survivors.json");
    let survivors = match read::<Fixed>(ctx, &survivors_key).await? {
        Some(fixed) => fixed,
        None => {
            let sent: Vec<String> = ctx
                .hub
                .registry()
                .updates(&row.id, row.round)
                .await
                .map_err(|e| KilnError::Internal(format!("registry: {e}")))?
                .into_iter()
                .map(|u| u.participant)
                .collect();
            let answered = indices_of(&roster.members, &sent);
            let indices = match step(answered, &sharers.indices, sharers.fixed_at, settings, now) {
                Step::Waiting => return Ok(Progress::Pending),
                Step::Short(n) => {
                    return Ok(Progress::Failed(format!(
                        "only {n} clients sent masked updates; secure aggregation needs {t}"
                    )));
                }
                Step::Done(indices) => indices,
            };
            fix(
                ctx,
                &survivors_key,
                Fixed {
                    indices,
                    fixed_at: now,
                },
            )
            .await?
        }
    };
    let answered = indices_of(&roster.members, &posted(ctx, &folder, "reveals").await?);
    let revealers = match step(
        answered,
        &survivors.indices,
        survivors.fixed_at,
        settings,
        now,
    ) {
        Step::Waiting => return Ok(Progress::Pending),
        Step::Short(n) => {
            return Ok(Progress::Failed(format!(
                "only {n} of the {} survivors revealed their shares; secure aggregation needs {t}",
                survivors.indices.len()
            )));
        }
        Step::Done(indices) => indices,
    };
    let unmasking = unmasking(ctx, &folder, roster, &sharers, survivors, &revealers).await?;
    Ok(Progress::Ready(Box::new(unmasking)))
}

/// What the round is unmasked with, once every step is done: the revealers' shares read.
async fn unmasking(
    ctx: &RunnerContext,
    folder: &str,
    roster: Roster,
    sharers: &Fixed,
    survivors: Fixed,
    revealers: &[u8],
) -> Result<Unmasking> {
    let mut revealed = Vec::new();
    for member in roster
        .members
        .iter()
        .filter(|m| revealers.contains(&m.index))
    {
        let key = format!("{folder}/reveals/{}.json", member.participant);
        revealed.extend(read::<Vec<Revealed>>(ctx, &key).await?.unwrap_or_default());
    }
    let sharers = roster
        .members
        .iter()
        .filter(|m| sharers.indices.contains(&m.index))
        .cloned()
        .collect();
    Ok(Unmasking {
        roster,
        sharers,
        survivors: survivors.indices,
        revealed,
    })
}

/// The roster, fixing it when every place of the round advertised keys, or at the round's
/// timeout; `None` while it is still open.
async fn fix_roster(
    ctx: &RunnerContext,
    row: &FederationRow,
    plan: &FederationPlan,
    settings: &SecureSettings,
    folder: &str,
    now: i64,
) -> Result<Option<Roster>> {
    let key = format!("{folder}/roster.json");
    if let Some(roster) = read::<Roster>(ctx, &key).await? {
        return Ok(Some(roster));
    }
    let mut advertised = posted(ctx, folder, "keys").await?;
    advertised.sort();
    let timed_out = row
        .round_opened_at
        .is_some_and(|at| now - at >= plan.round_timeout_secs.saturating_mul(1000));
    let enough = advertised.len() as i64 >= plan.min_clients.max(settings.threshold as i64);
    if (advertised.len() as i64) < plan.clients_per_round && !(timed_out && enough) {
        if timed_out {
            // Short of the threshold at the timeout: fixed as it is, and the round fails.
            return Ok(Some(Roster {
                threshold: settings.threshold,
                members: Vec::new(),
                context: String::new(),
                fixed_at: now,
            }));
        }
        return Ok(None);
    }
    let mut members = Vec::with_capacity(advertised.len());
    for (i, participant) in advertised.iter().enumerate() {
        let keys: Advertised = read(ctx, &format!("{folder}/keys/{participant}.json"))
            .await?
            .ok_or_else(|| KilnError::Internal(format!("the keys of {participant} vanished")))?;
        members.push(Member {
            index: (i + 1) as u8,
            participant: participant.clone(),
            keys: keys.keys,
        });
    }
    let roster = Roster {
        threshold: settings.threshold,
        members,
        context: format!("{}/{}/{}", row.id, row.round, row.round_tries),
        fixed_at: now,
    };
    Ok(Some(fix(ctx, &key, roster).await?))
}

/// The indices of the members among `participants`.
fn indices_of(members: &[Member], participants: &[String]) -> Vec<u8> {
    members
        .iter()
        .filter(|m| participants.contains(&m.participant))
        .map(|m| m.index)
        .collect()
}

/// The shares sealed for `index`, from every client whose shares went out.
pub async fn inbox(
    ctx: &RunnerContext,
    folder: &str,
    roster: &Roster,
    sharers: &Fixed,
    index: u8,
) -> Result<Vec<SealedShare>> {
    let mut inbox = Vec::new();
    for member in roster
        .members
        .iter()
        .filter(|m| sharers.indices.contains(&m.index))
    {
        let key = format!("{folder}/shares/{}.json", member.participant);
        let sealed: Vec<SealedShare> = read(ctx, &key).await?.unwrap_or_default();
        inbox.extend(sealed.into_iter().filter(|s| s.to == index));
    }
    Ok(inbox)
}
