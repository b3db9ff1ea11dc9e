//! The pieces of a plan that come straight from the profile.

use plan::{FinalizePolicy, ProfileRef, RestoreLocation};

use crate::schema::{Location, Profile};

impl Profile {
    /// The plan's record of which profile it was made from.
    pub fn profile_ref(&self) -> ProfileRef {
        ProfileRef {
            name: self.name.clone(),
            device_type: self.device_type.clone(),
            source_kind: self.source.kind,
        }
    }

    /// The plan's finalize policy, as the profile states it.
    pub fn finalize_policy(&self) -> FinalizePolicy {
        FinalizePolicy {
            grow_over_staging: self.finalize.grow_over_staging,
            partition: self.finalize.grow_partition,
            reason: self.finalize.reason.clone(),
        }
    }
}

impl Location {
    /// The plan's form of this location, with `{app_id}` replaced.
    pub fn to_restore_location(&self, app_id: &str) -> RestoreLocation {
        RestoreLocation { partition: self.partition, path: self.resolve_path(app_id) }
    }
}

#[cfg(test)]
mod tests {
    use plan::{PartitionRole, SourceKind};

    use crate::Profile;

    #[test]
    fn plan_pieces_carry_the_profile_values() {
        let profile = Profile::builtin("resinos1x-raspberrypi3").unwrap();
        let reference = profile.profile_ref();
        assert_eq!(reference.name, "resinos1x-raspberrypi3");
        assert_eq!(reference.device_type, "raspberrypi3");
        assert_eq!(reference.source_kind, SourceKind::Resinos1x);
        let finalize = profile.finalize_policy();
        assert!(!finalize.grow_over_staging);
        assert_eq!(finalize.partition, PartitionRole::Data);
        assert_eq!(finalize.reason, profile.finalize.reason);

        let nuc = Profile::builtin("intel-nuc").unwrap();
        let data = nuc.restore.data.to_restore_location("42");
        assert_eq!((data.partition, data.path.as_str()), (PartitionRole::Data, "/resin-data/42"));
    }
}
