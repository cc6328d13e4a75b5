//! The lab the engine's tests share: `count` students `exam-NN` of template 9000 in
//! `ids`, the teacher 10.10.0.1.

use crate::{LabName, LabSpec, VmId};

pub(crate) fn spec_in(count: u32, ids: &str) -> LabSpec {
    let mut s = LabSpec::new(
        LabName::new("exam1").unwrap(),
        VmId::new(9000).unwrap(),
        count,
    )
    .unwrap();
    s.hostname = "exam-{n:02}".parse().unwrap();
    s.ids = ids.parse().unwrap();
    s.teachers = vec!["10.10.0.1".parse().unwrap()];
    s
}
