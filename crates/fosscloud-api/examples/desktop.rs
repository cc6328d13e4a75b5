//! Lists a FOSS-Cloud user's VMs and takes a desktop from the first assignable pool.
//!
//! Against the simulator (in two shells):
//!
//! ```text
//! cargo run -p fosscloud-sim -- --plain-http
//! FC_URL=http://127.0.0.1:8448/vm-manager FC_USER=alice FC_PASSWORD=alice-pw FC_INSECURE=1 \
//!     cargo run -p fosscloud-api --example desktop
//! ```
//!
//! Environment: `FC_URL` (the vm-manager base URL, required), `FC_USER`, `FC_PASSWORD`,
//! `FC_REALM` (optional realm id), `FC_INSECURE=1` (allow plain `http://` and accept any
//! certificate: for a simulator only), `FC_CA_FILE` (a PEM CA to trust, e.g. the one
//! `fosscloud-sim --ca-out ca.pem` writes).

use fosscloud_api::{FossCloudClient, RealmId, Secret, Vm, VmKind};

/// What the example needs to know, read from the environment.
pub struct Settings {
    /// The vm-manager base URL.
    pub url: String,
    /// The user name.
    pub user: String,
    /// The password.
    pub password: Secret,
    /// The realm, if not the server's default.
    pub realm: Option<RealmId>,
    /// Allow plain HTTP and any certificate.
    pub insecure: bool,
    /// An extra CA certificate (PEM) to trust.
    pub ca_pem: Option<Vec<u8>>,
}

impl Settings {
    /// Reads `FC_URL`, `FC_USER`, `FC_PASSWORD`, `FC_REALM`, `FC_INSECURE`, `FC_CA_FILE`.
    pub fn from_env() -> Result<Settings, Box<dyn std::error::Error>> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let url = var("FC_URL").ok_or(
            "set FC_URL to the vm-manager base URL, e.g. https://fc.example.org/vm-manager",
        )?;
        let realm = var("FC_REALM").map(|r| r.parse()).transpose()?;
        let ca_pem = var("FC_CA_FILE").map(std::fs::read).transpose()?;
        Ok(Settings {
            url,
            user: var("FC_USER").unwrap_or_default(),
            password: Secret::new(var("FC_PASSWORD").unwrap_or_default()),
            realm,
            insecure: matches!(var("FC_INSECURE").as_deref(), Some("1" | "true" | "yes")),
            ca_pem,
        })
    }
}

/// What the example did.
pub struct Outcome {
    /// The user's VMs before assigning.
    pub vms: Vec<Vm>,
    /// The VM taken from the first assignable pool, if there was one.
    pub assigned: Option<Vm>,
}

/// Logs in, lists the user's VMs and assigns the first assignable pool.
pub async fn run(settings: Settings) -> fosscloud_api::Result<Outcome> {
    let mut builder = FossCloudClient::builder(settings.url)
        .credentials(settings.user, settings.password)
        .allow_http(settings.insecure)
        .danger_accept_invalid_certs(settings.insecure);
    if let Some(realm) = settings.realm {
        builder = builder.realm(realm);
    }
    if let Some(pem) = settings.ca_pem {
        builder = builder.add_root_certificate_pem(pem);
    }
    let client = builder.build()?;

    client.login().await?;
    let vms = client.list_vms(VmKind::Owner).await?;
    let first_pool = vms
        .iter()
        .filter(|vm| vm.is_assignable())
        .find_map(|vm| vm.pool.clone());
    let assigned = match first_pool {
        Some(pool) => Some(client.assign(&pool).await?),
        None => None,
    };
    Ok(Outcome { vms, assigned })
}

fn describe(vm: &Vm) -> String {
    let endpoint = vm.spice_endpoint().map_or_else(
        || "-".to_owned(),
        |(host, port)| format!("spice://{host}:{port}"),
    );
    format!(
        "{:<24} {:<10} {:<10} {}",
        vm.name.as_deref().unwrap_or("(unnamed)"),
        vm.vm_type
            .as_ref()
            .map_or_else(String::new, ToString::to_string),
        vm.status.as_ref().map_or("-", |s| s.as_str()),
        endpoint
    )
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Print errors with Display: it names the code and what to do, Debug only the fields.
    match report().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn report() -> Result<(), Box<dyn std::error::Error>> {
    let outcome = run(Settings::from_env()?).await?;
    println!("{} VM(s):", outcome.vms.len());
    for vm in &outcome.vms {
        println!("  {}", describe(vm));
    }
    match &outcome.assigned {
        // The SPICE password stays hidden; a SPICE client would take it from vm.password.
        Some(vm) => println!(
            "assigned: {} (SPICE password: {:?})",
            describe(vm),
            vm.password
        ),
        None => println!("no assignable pool"),
    }
    Ok(())
}
