//! Plain-text tables for stdout (stable columns, so scripts can `awk` them).

use lab_core::StudentStatus;

/// `VMID  HOSTNAME  NODE  STATUS  IP` rows.
pub fn students(rows: &[StudentStatus]) -> String {
    let mut out = format!(
        "{:<8} {:<20} {:<8} {:<8} {}\n",
        "VMID", "HOSTNAME", "NODE", "STATUS", "IP"
    );
    for r in rows {
        let ip = r
            .primary_address()
            .map_or_else(|| "-".to_owned(), |a| a.to_string());
        out.push_str(&format!(
            "{:<8} {:<20} {:<8} {:<8} {}\n",
            r.vmid.to_string(),
            r.hostname,
            r.node.to_string(),
            r.status.to_string(),
            ip
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_core::{NodeName, VmId, VmStatus};

    fn row(id: u32, name: &str, ip: Option<&str>) -> StudentStatus {
        StudentStatus {
            vmid: VmId::new(id).unwrap(),
            hostname: name.into(),
            node: NodeName::new("pve2").unwrap(),
            status: if ip.is_some() {
                VmStatus::Running
            } else {
                VmStatus::Stopped
            },
            addresses: ip.map(|i| i.parse().unwrap()).into_iter().collect(),
            fenced: None,
        }
    }

    #[test]
    fn tables_show_every_column() {
        let rows = [
            row(5000, "exam-01", Some("10.10.3.4")),
            row(5001, "exam-02", None),
        ];
        let t = students(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with("5000") && lines[1].contains("exam-01"));
        assert!(lines[1].contains("pve2") && lines[1].ends_with("10.10.3.4"));
        assert!(lines[2].contains("stopped") && lines[2].ends_with('-'));
    }
}
