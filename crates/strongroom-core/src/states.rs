//! The key version state machine, as pure functions. Specified in `docs/key-states.md`; the
//! property tests below check its invariants over random action sequences.
//!
//! ```text
//!            disable                 schedule-destroy
//!  ENABLED ──────────▶ DISABLED ──────────────────────▶ DESTROY_SCHEDULED ──(destroy_time)──▶ DESTROYED
//!     ▲  ◀──────────── │   ▲                                   │
//!     │     enable     │   └───────────── restore ─────────────┘
//!     └────────────────┴──── schedule-destroy (also from ENABLED) ──▶ DESTROY_SCHEDULED
//! ```

use strongroom_store::{Timestamp, VersionRecord, VersionState};

/// Something that changes a version's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionAction {
    /// DISABLED → ENABLED (no-op when already enabled).
    Enable,
    /// ENABLED → DISABLED (no-op when already disabled).
    Disable,
    /// ENABLED or DISABLED → DESTROY_SCHEDULED, destroyed at the given time.
    ScheduleDestroy {
        /// When the material will be wiped.
        at: Timestamp,
    },
    /// DESTROY_SCHEDULED → DISABLED.
    Restore,
    /// DESTROY_SCHEDULED → DESTROYED, once `destroy_time` has passed. Wipes the material.
    Destroy {
        /// Now.
        now: Timestamp,
    },
}

impl VersionAction {
    /// The operation name used in errors.
    pub fn name(self) -> &'static str {
        match self {
            VersionAction::Enable => "enable-version",
            VersionAction::Disable => "disable-version",
            VersionAction::ScheduleDestroy { .. } => "schedule-version-destruction",
            VersionAction::Restore => "restore-version",
            VersionAction::Destroy { .. } => "scheduled-destruction",
        }
    }
}

/// The transition is not allowed from the current state; the text says what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAllowed {
    /// The state the version is in.
    pub state: VersionState,
    /// What the action needs, e.g. `needs it destroy_scheduled`.
    pub requirement: &'static str,
}

/// Applies an action, returning the new record, or why it is not allowed.
pub fn apply(v: &VersionRecord, action: VersionAction) -> Result<VersionRecord, NotAllowed> {
    use VersionState::*;
    let refuse = |requirement| {
        Err(NotAllowed {
            state: v.state,
            requirement,
        })
    };
    let mut next = v.clone();
    match (v.state, action) {
        (Enabled | Disabled, VersionAction::Enable) => next.state = Enabled,
        (Enabled | Disabled, VersionAction::Disable) => next.state = Disabled,
        (_, VersionAction::Enable | VersionAction::Disable) => {
            return refuse(
                "needs it enabled or disabled (restore it first if it is scheduled for destruction)",
            );
        }
        (Enabled | Disabled, VersionAction::ScheduleDestroy { at }) => {
            next.state = DestroyScheduled;
            next.destroy_time = Some(at);
        }
        (DestroyScheduled, VersionAction::ScheduleDestroy { .. }) => {
            return refuse("is already scheduled; restore it to change the time");
        }
        (Destroyed, VersionAction::ScheduleDestroy { .. }) => return refuse("cannot be undone"),
        (DestroyScheduled, VersionAction::Restore) => {
            next.state = Disabled;
            next.destroy_time = None;
        }
        (_, VersionAction::Restore) => return refuse("needs it destroy_scheduled"),
        (DestroyScheduled, VersionAction::Destroy { now }) => {
            if v.destroy_time.is_none_or(|t| t > now) {
                return refuse("must wait until its destroy_time");
            }
            next.state = Destroyed;
            next.sealed_material = None;
            next.destroyed_at = Some(now);
        }
        (_, VersionAction::Destroy { .. }) => return refuse("needs it destroy_scheduled"),
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use strongroom_crypto::KeyId;

    fn fresh() -> VersionRecord {
        VersionRecord {
            origin: strongroom_store::VersionOrigin::Creation,
            key_id: KeyId::from_bytes([1; 16]),
            version: 1,
            state: VersionState::Enabled,
            sealed_material: Some(vec![1, 2, 3]),
            public_key: None,
            created_at: Timestamp(0),
            destroy_time: None,
            destroyed_at: None,
        }
    }

    fn action() -> impl Strategy<Value = VersionAction> {
        prop_oneof![
            Just(VersionAction::Enable),
            Just(VersionAction::Disable),
            (0i64..100).prop_map(|t| VersionAction::ScheduleDestroy { at: Timestamp(t) }),
            Just(VersionAction::Restore),
            (0i64..100).prop_map(|t| VersionAction::Destroy { now: Timestamp(t) }),
        ]
    }

    proptest! {
        #[test]
        fn invariants_hold_over_any_sequence(actions in proptest::collection::vec(action(), 0..40)) {
            let mut v = fresh();
            for a in actions {
                let before = v.clone();
                match apply(&v, a) {
                    Ok(next) => {
                        // Destroyed is terminal: nothing succeeds from it.
                        prop_assert_ne!(before.state, VersionState::Destroyed);
                        // Destruction never happens before its time.
                        if next.state == VersionState::Destroyed {
                            prop_assert_eq!(before.state, VersionState::DestroyScheduled);
                            let VersionAction::Destroy { now } = a else { panic!("destroyed by {a:?}") };
                            prop_assert!(before.destroy_time.unwrap() <= now);
                        }
                        v = next;
                    }
                    Err(e) => {
                        prop_assert_eq!(e.state, before.state);
                    }
                }
                // Material is present exactly when the version is not destroyed.
                prop_assert_eq!(v.sealed_material.is_none(), v.state == VersionState::Destroyed);
                // A destroy time is set exactly while destruction is pending (or done).
                prop_assert_eq!(
                    v.destroy_time.is_some(),
                    matches!(v.state, VersionState::DestroyScheduled | VersionState::Destroyed)
                );
                prop_assert_eq!(v.version, 1);
            }
        }
    }

    #[test]
    fn restore_lands_in_disabled() {
        let v = apply(
            &fresh(),
            VersionAction::ScheduleDestroy { at: Timestamp(10) },
        )
        .unwrap();
        let v = apply(&v, VersionAction::Restore).unwrap();
        assert_eq!(v.state, VersionState::Disabled);
        assert_eq!(v.destroy_time, None);
        assert_eq!(
            apply(&v, VersionAction::Enable).unwrap().state,
            VersionState::Enabled
        );
    }

    #[test]
    fn destroy_waits_for_its_time() {
        let v = apply(
            &fresh(),
            VersionAction::ScheduleDestroy { at: Timestamp(10) },
        )
        .unwrap();
        assert!(apply(&v, VersionAction::Destroy { now: Timestamp(9) }).is_err());
        let d = apply(&v, VersionAction::Destroy { now: Timestamp(10) }).unwrap();
        assert_eq!(d.state, VersionState::Destroyed);
        assert_eq!(d.sealed_material, None);
        assert!(apply(&d, VersionAction::Restore).is_err());
    }
}
