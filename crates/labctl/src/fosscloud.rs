//! `labctl fosscloud realms|list|assign`: desktops from a FOSS-Cloud VDI.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use fosscloud_api::{FossCloudClient, PoolId, RealmId, Secret, Vm, VmKind};

/// Where the FOSS-Cloud server is and who logs in.
#[derive(Debug, Args)]
pub struct FossCloudArgs {
    /// The vm-manager base URL, e.g. `https://fc.example.org/vm-manager`.
    #[arg(long, env = "FC_URL", value_name = "URL")]
    url: String,

    /// User name; the password comes from `FC_PASSWORD` or a prompt, never from the
    /// command line.
    #[arg(long, env = "FC_USER", value_name = "USER")]
    user: Option<String>,

    /// Realm id (default: the server's default realm).
    #[arg(long, env = "FC_REALM", value_name = "ID")]
    realm: Option<String>,

    /// Trust this CA certificate (PEM) in addition to the system roots.
    #[arg(long, env = "FC_CA_FILE", value_name = "PEM")]
    ca_file: Option<PathBuf>,

    /// Allow a plain `http://` URL (credentials travel unencrypted: simulators only).
    #[arg(long)]
    allow_http: bool,

    #[command(subcommand)]
    command: FossCloudCommand,
}

/// The FOSS-Cloud subcommands.
#[derive(Debug, Subcommand)]
enum FossCloudCommand {
    /// List the server's authentication realms (no login needed).
    Realms,
    /// List the user's VMs and assignable pools.
    List {
        /// Which VMs: `owner` (the user's, default), `dynamic`, `persistent`, `all`.
        #[arg(long, default_value = "owner", value_name = "KIND")]
        kind: String,
    },
    /// Take a VM from a dynamic pool (not idempotent: every call takes another VM).
    Assign {
        /// The pool id, as `list` shows it.
        pool: String,
        /// Print the VM's SPICE password (hidden by default so it stays out of logs and
        /// screen shares).
        #[arg(long)]
        show_password: bool,
    },
}

impl FossCloudArgs {
    fn client(&self, needs_login: bool) -> anyhow::Result<FossCloudClient> {
        let mut b = FossCloudClient::builder(self.url.clone()).allow_http(self.allow_http);
        if let Some(r) = &self.realm {
            let realm: RealmId = r.parse()?;
            b = b.realm(realm);
        }
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).with_context(|| format!("reading CA file {ca:?}"))?;
            b = b.add_root_certificate_pem(pem);
        }
        if needs_login {
            let Some(user) = &self.user else {
                bail!("no FOSS-Cloud user: set --user or FC_USER (and FC_PASSWORD)");
            };
            b = b.credentials(user.clone(), password(user)?);
        }
        Ok(b.build()?)
    }
}

fn password(user: &str) -> anyhow::Result<Secret> {
    crate::connect::password_from_env_or_prompt(
        "FC_PASSWORD",
        &format!("FOSS-Cloud password for {user}: "),
        user,
    )
    .map(Secret::new)
}

fn row(vm: &Vm) -> String {
    let spice = vm
        .spice_endpoint()
        .map_or_else(|| "-".to_owned(), |(h, p)| format!("spice://{h}:{p}"));
    format!(
        "{:<24} {:<11} {:<11} {:<38} {}",
        vm.name.as_deref().unwrap_or("-"),
        vm.vm_type
            .as_ref()
            .map_or_else(|| "-".to_owned(), ToString::to_string),
        vm.status.as_ref().map_or("-", |s| s.as_str()),
        vm.pool.as_ref().map_or("-", |p| p.as_str()),
        spice
    )
}

/// Runs a FOSS-Cloud subcommand.
pub async fn run(args: &FossCloudArgs) -> anyhow::Result<()> {
    match &args.command {
        FossCloudCommand::Realms => {
            let client = args.client(false)?;
            println!("{:<12} {:<8} NAME", "REALM", "DEFAULT");
            for r in client.realms().await? {
                println!(
                    "{:<12} {:<8} {}",
                    r.uid.as_str(),
                    if r.default { "yes" } else { "" },
                    r.display_name.as_deref().unwrap_or("-")
                );
            }
        }
        FossCloudCommand::List { kind } => {
            let kind: VmKind = kind.parse().map_err(|e| {
                anyhow::anyhow!("invalid kind {kind:?}: owner, dynamic, persistent or all ({e})")
            })?;
            let client = args.client(true)?;
            let vms = client.list_vms(kind).await?;
            println!(
                "{:<24} {:<11} {:<11} {:<38} SPICE",
                "NAME", "TYPE", "STATUS", "POOL"
            );
            for vm in &vms {
                println!("{}", row(vm));
            }
        }
        FossCloudCommand::Assign {
            pool,
            show_password,
        } => {
            let pool: PoolId = pool.parse()?;
            let client = args.client(true)?;
            let vm = client.assign(&pool).await?;
            println!("{}", row(&vm));
            match &vm.password {
                Some(pw) if *show_password => println!("spice password: {}", pw.expose()),
                Some(_) => println!("spice password: *** (--show-password prints it)"),
                None => {}
            }
        }
    }
    Ok(())
}
