//! Every FOSS-Cloud API code as a typed value.
//!
//! The server (vm-manager 1.3.2.x, `ApiController`/`ApiBackend`) answers with a six-digit
//! `code` next to the HTTP status. The source is what servers run, so [`Code`] follows it; the
//! numbers the published documentation uses where it disagrees are recognised by
//! [`Code::from_number`] and reported by [`Code::doc_number`].

use std::fmt;

/// One FOSS-Cloud API code (success or error).
///
/// The first three digits are the HTTP status the server pairs it with, except
/// [`Code::InternalError`] (500000), which the server sends with HTTP **400** (its exception
/// handler uses the wrong status). Codes this crate does not know are kept in
/// [`Code::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// 200001: the credentials are correct (`/user/login`).
    LoginOk,
    /// 200011: the realm list was read (`/server/realms`).
    RealmsOk,
    /// 200031: the VM list was read (`/vm/list`).
    ListOk,
    /// 200041: a VM of the pool was assigned to the user (`/vm/assign`).
    AssignOk,
    /// 200051: the VM mapped to the MAC address was read (`/vm/mapping/list`).
    MappingListOk,
    /// 200061: the mapped VM was assigned (`/vm/mapping/assign`).
    MappingAssignOk,

    /// 400002 "HTTP-Auth missing": no Basic credentials were sent.
    ///
    /// The documentation's example envelope shows this as 401002; that number is recognised.
    HttpAuthMissing,
    /// 400005 "Password or username empty" (empty after trimming whitespace).
    CredentialsEmpty,
    /// 401003 "Incorrect credentials": unknown user or wrong password.
    CredentialsIncorrect,
    /// 401004 "Incorrect realm": the realm does not exist, or the user belongs to another
    /// realm's customer.
    RealmIncorrect,

    /// 400032 "Unkown type": the `/vm/list/<type>` segment is not owner/dynamic/persistent/all.
    UnknownListType,
    /// 403033: listing `all` needs the right `dynamicVM.view = all` (the documentation wrongly
    /// names `persistentVM.access`).
    ListAllForbidden,

    /// 400042 "VM pool not found".
    PoolNotFound,
    /// 500043 "No free vm available": every Desktop VM of the pool is assigned.
    NoFreeVm,

    /// 500052: `/vm/mapping/list` needs the FC4School (`school`) module.
    MappingListNoSchoolModule,
    /// 400053: `/vm/mapping/list` must be called by the dynvmuser.
    MappingListNotDynvmuser,
    /// 400054: no VM is mapped to this MAC address (`/vm/mapping/list`).
    MappingListNoVmForMac,
    /// 400055: the MAC address is invalid, or could not be determined because the client is
    /// not on the server's local network (`/vm/mapping/list`).
    MappingListInvalidMac,
    /// 403056: a MAC address was given in the URL but `macByParameter` is disabled
    /// (`/vm/mapping/list`).
    MappingListMacParamDisabled,

    /// 500062: `/vm/mapping/assign` needs the FC4School (`school`) module.
    MappingAssignNoSchoolModule,
    /// 400063: `/vm/mapping/assign` must be called by the dynvmuser.
    MappingAssignNotDynvmuser,
    /// 400064: no VM is mapped to this MAC address (`/vm/mapping/assign`).
    MappingAssignNoVmForMac,
    /// 400065: the MAC address is invalid or could not be determined (`/vm/mapping/assign`).
    ///
    /// The documentation gives 400065 the meaning "pool isn't valid"; the server's source uses
    /// it for the invalid MAC, and the source wins.
    MappingAssignInvalidMac,
    /// 400066 "This pool isn't valid" (`/vm/mapping/assign`; the documentation says 400065).
    MappingAssignPoolInvalid,
    /// 400067: the user is already assigned to the mapped VM.
    MappingAssignAlreadyAssigned,
    /// 403066: a MAC address was given in the URL but `macByParameter` is disabled
    /// (`/vm/mapping/assign`; the documentation says 400068, which is recognised).
    MappingAssignMacParamDisabled,

    /// 404000 "Unkown action": a route inside the API controller that has no action.
    UnknownAction,
    /// 500000: an exception inside the server (LDAP failure, ...). Sent with HTTP 400; the
    /// `devDescription` carries the exception message.
    InternalError,
    /// 500022: the API is disabled in the server's configuration (`enable`).
    ApiDisabled,
    /// 500023: the server's configuration has no `defaultRealm`.
    DefaultRealmMissing,

    /// A code this crate does not know (a newer or patched server).
    Unknown(u32),
}

/// The documentation's numbers that differ from the source, with the code they mean.
const DOC_ALIASES: &[(u32, Code)] = &[
    (401_002, Code::HttpAuthMissing),
    (400_068, Code::MappingAssignMacParamDisabled),
];

impl Code {
    /// Every known code (success and error), in source order.
    pub const ALL: &'static [Code] = &[
        Code::LoginOk,
        Code::RealmsOk,
        Code::ListOk,
        Code::AssignOk,
        Code::MappingListOk,
        Code::MappingAssignOk,
        Code::HttpAuthMissing,
        Code::CredentialsEmpty,
        Code::CredentialsIncorrect,
        Code::RealmIncorrect,
        Code::UnknownListType,
        Code::ListAllForbidden,
        Code::PoolNotFound,
        Code::NoFreeVm,
        Code::MappingListNoSchoolModule,
        Code::MappingListNotDynvmuser,
        Code::MappingListNoVmForMac,
        Code::MappingListInvalidMac,
        Code::MappingListMacParamDisabled,
        Code::MappingAssignNoSchoolModule,
        Code::MappingAssignNotDynvmuser,
        Code::MappingAssignNoVmForMac,
        Code::MappingAssignInvalidMac,
        Code::MappingAssignPoolInvalid,
        Code::MappingAssignAlreadyAssigned,
        Code::MappingAssignMacParamDisabled,
        Code::UnknownAction,
        Code::InternalError,
        Code::ApiDisabled,
        Code::DefaultRealmMissing,
    ];

    /// Reads a code number as sent by the server (or as printed in the documentation).
    ///
    /// Source numbers map to their variant; the documentation's differing numbers (401002,
    /// 400068) map to the variant they describe; anything else is [`Code::Unknown`]. Where the
    /// two disagree on one number (400065), the source's meaning is used.
    pub fn from_number(number: u32) -> Code {
        if let Some(code) = Code::ALL.iter().find(|c| c.number() == number) {
            return *code;
        }
        DOC_ALIASES
            .iter()
            .find(|(n, _)| *n == number)
            .map_or(Code::Unknown(number), |(_, c)| *c)
    }

    /// The number the server's source sends for this code.
    pub fn number(self) -> u32 {
        match self {
            Code::LoginOk => 200_001,
            Code::RealmsOk => 200_011,
            Code::ListOk => 200_031,
            Code::AssignOk => 200_041,
            Code::MappingListOk => 200_051,
            Code::MappingAssignOk => 200_061,
            Code::HttpAuthMissing => 400_002,
            Code::CredentialsEmpty => 400_005,
            Code::CredentialsIncorrect => 401_003,
            Code::RealmIncorrect => 401_004,
            Code::UnknownListType => 400_032,
            Code::ListAllForbidden => 403_033,
            Code::PoolNotFound => 400_042,
            Code::NoFreeVm => 500_043,
            Code::MappingListNoSchoolModule => 500_052,
            Code::MappingListNotDynvmuser => 400_053,
            Code::MappingListNoVmForMac => 400_054,
            Code::MappingListInvalidMac => 400_055,
            Code::MappingListMacParamDisabled => 403_056,
            Code::MappingAssignNoSchoolModule => 500_062,
            Code::MappingAssignNotDynvmuser => 400_063,
            Code::MappingAssignNoVmForMac => 400_064,
            Code::MappingAssignInvalidMac => 400_065,
            Code::MappingAssignPoolInvalid => 400_066,
            Code::MappingAssignAlreadyAssigned => 400_067,
            Code::MappingAssignMacParamDisabled => 403_066,
            Code::UnknownAction => 404_000,
            Code::InternalError => 500_000,
            Code::ApiDisabled => 500_022,
            Code::DefaultRealmMissing => 500_023,
            Code::Unknown(n) => n,
        }
    }

    /// The number the published documentation uses, when it differs from [`Code::number`].
    pub fn doc_number(self) -> Option<u32> {
        match self {
            // Not in DOC_ALIASES: the source uses 400065 for another code, and wins.
            Code::MappingAssignPoolInvalid => Some(400_065),
            other => DOC_ALIASES
                .iter()
                .find(|(_, c)| *c == other)
                .map(|(n, _)| *n),
        }
    }

    /// The HTTP status the server sends with this code.
    ///
    /// For [`Code::Unknown`] this is the number's first three digits (the documented scheme).
    pub fn http_status(self) -> u16 {
        match self {
            Code::InternalError => 400,
            other => u16::try_from(other.number() / 1000).unwrap_or(u16::MAX),
        }
    }

    /// Whether this is a success code (2xxxxx).
    pub fn is_success(self) -> bool {
        (200_000..300_000).contains(&self.number())
    }

    /// The server's `devDescription` for an error code, verbatim (typos included), or `None`
    /// for successes, [`Code::InternalError`] (its text is the exception message) and unknown
    /// codes.
    pub fn server_text(self) -> Option<&'static str> {
        Some(match self {
            Code::HttpAuthMissing => "HTTP-Auth missing",
            Code::CredentialsEmpty => "Password or username empty",
            Code::CredentialsIncorrect => "Incorrect credentials",
            Code::RealmIncorrect => "Incorrect realm",
            Code::UnknownListType => "Unkown type - Use nothing,all(default),dynamic,persistent",
            Code::ListAllForbidden => "The user doesn't have permission to list all vms",
            Code::PoolNotFound => "VM pool not found",
            Code::NoFreeVm => "No free vm available",
            Code::MappingListNoSchoolModule | Code::MappingAssignNoSchoolModule => {
                "The school module isn't available"
            }
            Code::MappingListNotDynvmuser | Code::MappingAssignNotDynvmuser => {
                "You've to use the dynvmuser"
            }
            Code::MappingListNoVmForMac | Code::MappingAssignNoVmForMac => {
                "There's no vm for this mac available"
            }
            Code::MappingListInvalidMac | Code::MappingAssignInvalidMac => {
                "Invalid macaddress or don't connected locally"
            }
            Code::MappingListMacParamDisabled | Code::MappingAssignMacParamDisabled => {
                "MacByParameter is disabled in config"
            }
            Code::MappingAssignPoolInvalid => "This pool isn't valid",
            Code::MappingAssignAlreadyAssigned => "The user is already assigned to this mapped vm",
            Code::UnknownAction => "Unkown action",
            Code::ApiDisabled => "You have to enable the api in vm_config.php",
            Code::DefaultRealmMissing => "You have to set a default realm in vm_config.php",
            _ => return None,
        })
    }

    /// A short explanation in plain words, with what to do next.
    pub fn meaning(self) -> &'static str {
        match self {
            Code::LoginOk => "login succeeded",
            Code::RealmsOk => "realms listed",
            Code::ListOk => "VMs listed",
            Code::AssignOk => "VM assigned",
            Code::MappingListOk => "mapped VM listed",
            Code::MappingAssignOk => "mapped VM assigned",
            Code::HttpAuthMissing => "no credentials were sent; configure a user and password",
            Code::CredentialsEmpty => "the user name or password is empty",
            Code::CredentialsIncorrect => "wrong user name or password",
            Code::RealmIncorrect => {
                "the realm does not exist or the user does not belong to it; list realms with /server/realms"
            }
            Code::UnknownListType => "unknown list type; use owner, dynamic, persistent or all",
            Code::ListAllForbidden => "listing all VMs needs the right dynamicVM.view = all",
            Code::PoolNotFound => "no VM pool has this id",
            Code::NoFreeVm => "every Desktop VM of the pool is taken; free one or enlarge the pool",
            Code::MappingListNoSchoolModule | Code::MappingAssignNoSchoolModule => {
                "the server has no FC4School module"
            }
            Code::MappingListNotDynvmuser | Code::MappingAssignNotDynvmuser => {
                "MAC mapping calls must use the dynvmuser account"
            }
            Code::MappingListNoVmForMac | Code::MappingAssignNoVmForMac => {
                "no VM is mapped to this MAC address"
            }
            Code::MappingListInvalidMac | Code::MappingAssignInvalidMac => {
                "the MAC address is invalid, or the server could not find it because the client is not on its local network"
            }
            Code::MappingListMacParamDisabled | Code::MappingAssignMacParamDisabled => {
                "the server does not accept a MAC address in the URL (macByParameter is off); call without a MAC from the local network"
            }
            Code::MappingAssignPoolInvalid => "the pool does not fit the mapped VM",
            Code::MappingAssignAlreadyAssigned => "the user is already assigned to the mapped VM",
            Code::UnknownAction => "the API has no such action",
            Code::InternalError => "the server failed internally; see devDescription and the server's log",
            Code::ApiDisabled => "the REST API is disabled on the server (enable it in api_config.php)",
            Code::DefaultRealmMissing => "the server has no default realm configured",
            Code::Unknown(_) => "a code this client does not know",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.number(), self.meaning())
    }
}

impl From<u32> for Code {
    fn from(number: u32) -> Self {
        Code::from_number(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_code_round_trips_through_its_number() {
        for code in Code::ALL {
            assert_eq!(Code::from_number(code.number()), *code, "{code:?}");
        }
        let mut numbers: Vec<u32> = Code::ALL.iter().map(|c| c.number()).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), Code::ALL.len(), "numbers are unique");
    }

    #[test]
    fn documentation_numbers_are_recognised() {
        assert_eq!(
            Code::from_number(400_068),
            Code::MappingAssignMacParamDisabled
        );
        assert_eq!(Code::from_number(401_002), Code::HttpAuthMissing);
        // Source wins where both use one number.
        assert_eq!(Code::from_number(400_065), Code::MappingAssignInvalidMac);
        assert_eq!(Code::MappingAssignPoolInvalid.doc_number(), Some(400_065));
        assert_eq!(
            Code::MappingAssignMacParamDisabled.doc_number(),
            Some(400_068)
        );
        assert_eq!(Code::HttpAuthMissing.doc_number(), Some(401_002));
        assert_eq!(Code::LoginOk.doc_number(), None);
        // Every documentation number read by from_number is the one doc_number reports.
        for (number, code) in DOC_ALIASES {
            assert_eq!(Code::from_number(*number), *code);
            assert_eq!(code.doc_number(), Some(*number), "{code:?}");
        }
    }

    #[test]
    fn unknown_numbers_are_kept() {
        assert_eq!(Code::from_number(418_001), Code::Unknown(418_001));
        assert_eq!(Code::Unknown(418_001).number(), 418_001);
        assert_eq!(Code::Unknown(418_001).http_status(), 418);
    }

    #[test]
    fn http_status_follows_the_source() {
        assert_eq!(Code::InternalError.http_status(), 400);
        assert_eq!(Code::NoFreeVm.http_status(), 500);
        assert_eq!(Code::MappingAssignMacParamDisabled.http_status(), 403);
        assert_eq!(Code::RealmIncorrect.http_status(), 401);
        assert!(Code::AssignOk.is_success());
        assert!(!Code::PoolNotFound.is_success());
    }
}
