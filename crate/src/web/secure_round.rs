//! `SecureRound`: one client's secrets and steps in a securely aggregated round, for the
//! package's `joinFederation` (the same `kiln::federated::secure` code the native client runs).
//! Its secrets never leave this object.

use super::convert::{js_error, to_js};
use crate::error::KilnError;
use crate::federated::secure::{
    Member, RoundSecrets, SealedShare, SecureRoundSettings, masked_model_update,
};
use crate::model::SavedModel;
use wasm_bindgen::prelude::*;

/// A client's part in one securely aggregated round.
#[wasm_bindgen]
pub struct SecureRound {
    secrets: RoundSecrets,
    settings: SecureRoundSettings,
}

/// A JS value read as `T`, or an `Error` naming `what`.
fn read<T: serde::de::DeserializeOwned>(value: JsValue, what: &str) -> Result<T, JsValue> {
    serde_wasm_bindgen::from_value(value)
        .map_err(|e| js_error(KilnError::InvalidArgument(format!("{what}: {e}"))))
}

#[wasm_bindgen]
impl SecureRound {
    /// Fresh keys and self-mask seed for a round with `threshold` and `clipNorm`.
    #[wasm_bindgen(constructor)]
    pub fn new(threshold: usize, clip_norm: f64) -> Result<SecureRound, JsValue> {
        Ok(Self {
            secrets: RoundSecrets::generate().map_err(js_error)?,
            settings: SecureRoundSettings {
                threshold,
                clip_norm,
            },
        })
    }

    /// Step 1: `{ cipher, mask }`, the public keys to advertise.
    #[wasm_bindgen(js_name = publicKeys)]
    pub fn public_keys(&self) -> Result<JsValue, JsValue> {
        to_js(&self.secrets.public_keys())
    }

    /// Step 2: the sealed shares for every other member of `roster` (the server's `members`).
    #[wasm_bindgen(js_name = sealShares)]
    pub fn seal_shares(
        &mut self,
        me: u8,
        roster: JsValue,
        context: &str,
    ) -> Result<JsValue, JsValue> {
        let roster: Vec<Member> = read(roster, "roster")?;
        let sealed = self
            .secrets
            .seal_shares(me, &roster, self.settings.threshold, context.as_bytes())
            .map_err(js_error)?;
        to_js(&sealed)
    }

    /// Step 3: the masked update's bytes, from the round's global model and the trained one
    /// (`.kiln` bytes both) and the members whose shares went out.
    #[wasm_bindgen(js_name = maskedUpdate)]
    pub fn masked_update(
        &self,
        me: u8,
        global: &[u8],
        trained: &[u8],
        examples: f64,
        sharers: JsValue,
        context: &str,
    ) -> Result<js_sys::Uint8Array, JsValue> {
        let sharers: Vec<Member> = read(sharers, "sharers")?;
        let global = SavedModel::from_bytes(global).map_err(js_error)?;
        let trained = SavedModel::from_bytes(trained).map_err(js_error)?;
        let bytes = masked_model_update(
            &self.secrets,
            me,
            &sharers,
            self.settings,
            (&global, &trained),
            examples.max(1.0) as u64,
            context.as_bytes(),
        )
        .map_err(js_error)?;
        Ok(js_sys::Uint8Array::from(bytes.as_slice()))
    }

    /// Step 4: the shares to reveal, from the shares sealed for this client (`inbox`), the
    /// members whose shares went out and the survivors' indices.
    pub fn reveal(
        &self,
        me: u8,
        inbox: JsValue,
        sharers: JsValue,
        survivors: JsValue,
        context: &str,
    ) -> Result<JsValue, JsValue> {
        let inbox: Vec<SealedShare> = read(inbox, "inbox")?;
        let sharers: Vec<Member> = read(sharers, "sharers")?;
        let survivors: Vec<u8> = read(survivors, "survivors")?;
        let revealed = self
            .secrets
            .reveal(
                me,
                &inbox,
                &sharers,
                &survivors,
                self.settings.threshold,
                context.as_bytes(),
            )
            .map_err(js_error)?;
        to_js(&revealed)
    }
}
