//! Replaced by real end-to-end tests as the crates land.
#[test]
fn workspace_builds() {
    assert_eq!(2 + 2, 4);
}
