//! `labctl fosscloud login|realms|list|assign|mapping`: every call of the FOSS-Cloud REST
//! API, with its own TLS choices and `FC_*` environment fallbacks.
//!
//! Nothing is printed to stdout before the call succeeded; `-o json` prints the API's
//! objects with the API's field names (`uuid`, `name`, `ip`, `node`, `port`, `password`,
//! `status`, `type`, `subtype`, `os`, `pool`; realms `uid`, `displayName`, `default`), the
//! SPICE password as `"***"` unless `--show-password`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use fosscloud_api::{Fingerprint, FossCloudClient, MacAddr, PoolId, RealmId, Secret, Vm, VmKind};
use serde_json::{json, Value};

use crate::fail;
use crate::output::{or_dash, print_json, Format, Sheet};

/// Where the FOSS-Cloud server is, how to trust it and who logs in.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  export FC_URL=https://fc.school.example/vm-manager FC_USER=alice   # FC_PASSWORD or a prompt
  labctl fosscloud realms
  labctl fosscloud --fingerprint AA:BB:... login
  labctl fosscloud list dynamic -o json
  labctl fosscloud assign 5c3f8e1e-...          # a pool id from `list`
  FC_USER=dynvmuser labctl fosscloud mapping list 52:54:00:12:34:56
  labctl fosscloud --ca-file school-ca.pem mapping assign 5c3f8e1e-... 52:54:00:12:34:56

Environment: FC_URL, FC_USER, FC_PASSWORD, FC_REALM, FC_CA_FILE, FC_FINGERPRINT.")]
pub struct FossCloudArgs {
    /// The vm-manager base URL, e.g. `https://fc.example.org/vm-manager`.
    #[arg(long, value_name = "URL", global = true)]
    url: Option<String>,

    /// User name; the password comes from `FC_PASSWORD` or a prompt, never from the
    /// command line.
    #[arg(long, value_name = "USER", global = true)]
    user: Option<String>,

    /// Realm id (default: the server's default realm).
    #[arg(long, value_name = "ID", global = true)]
    realm: Option<String>,

    /// Trust the certificates of this PEM file: the server's own (self-signed) certificate
    /// or the CA that issued it, in addition to the system roots.
    #[arg(long, value_name = "PEM", global = true)]
    ca_file: Option<PathBuf>,

    /// Accept exactly the server certificate with this SHA-256 fingerprint (`AA:BB:…`), e.g.
    /// from `openssl x509 -noout -fingerprint -sha256`; works with any self-signed certificate.
    #[arg(long, value_name = "SHA256", global = true)]
    fingerprint: Option<String>,

    /// Accept any certificate (no verification at all: anyone on the path can read the
    /// password). Only for throw-away test setups.
    #[arg(long, global = true)]
    insecure: bool,

    /// Allow a plain `http://` URL (credentials travel unencrypted: simulators only).
    #[arg(long, global = true)]
    allow_http: bool,

    #[command(subcommand)]
    command: FossCloudCommand,
}

/// The FOSS-Cloud subcommands.
#[derive(Debug, Subcommand)]
enum FossCloudCommand {
    /// Check the user's credentials (and realm).
    #[command(after_help = "Example:\n  FC_USER=alice labctl fosscloud login --realm 4000013")]
    Login,
    /// List the server's authentication realms (no login needed).
    #[command(after_help = "Example:\n  labctl fosscloud realms -o json")]
    Realms,
    /// List the user's VMs and assignable pools.
    #[command(
        after_help = "Examples:\n  labctl fosscloud list\n  labctl fosscloud list dynamic -o json"
    )]
    List {
        /// Which VMs: `owner` (the user's, default), `dynamic`, `persistent`, `all`.
        #[arg(value_name = "TYPE")]
        vm_type: Option<String>,
        /// The same as TYPE (kept for older scripts).
        #[arg(long, value_name = "TYPE", hide = true, conflicts_with = "vm_type")]
        kind: Option<String>,
    },
    /// Take a VM from a dynamic pool (not idempotent: every call takes another VM).
    #[command(
        after_help = "Example:\n  labctl fosscloud assign 57e3bd10-1934-4b4f-3d4c-6e31473bddab --show-password"
    )]
    Assign {
        /// The pool id, as `list` shows it.
        #[arg(value_name = "POOL")]
        pool: String,
        #[command(flatten)]
        show: ShowPassword,
    },
    /// FC4School: the VM mapped to a MAC address (call as the dynvmuser).
    #[command(
        subcommand,
        after_help = "Example:\n  FC_USER=dynvmuser labctl fosscloud mapping list 52:54:00:00:00:01"
    )]
    Mapping(MappingCommand),
}

/// `fosscloud mapping …`.
#[derive(Debug, Subcommand)]
enum MappingCommand {
    /// The VM mapped to MAC (without MAC: to the caller's own address, local network only).
    #[command(
        after_help = "Example:\n  FC_USER=dynvmuser labctl fosscloud mapping list 52:54:00:00:00:01 -o json"
    )]
    List {
        /// MAC address `52:54:00:12:34:56` (needs macByParameter on the server).
        #[arg(value_name = "MAC")]
        mac: Option<String>,
        #[command(flatten)]
        show: ShowPassword,
    },
    /// Assign the VM mapped to MAC from POOL.
    #[command(
        after_help = "Example:\n  FC_USER=dynvmuser labctl fosscloud mapping assign 6a1c2e3f-0000-4000-8000-00000000a004 52:54:00:00:00:01"
    )]
    Assign {
        /// The pool id.
        #[arg(value_name = "POOL")]
        pool: String,
        /// MAC address (needs macByParameter on the server).
        #[arg(value_name = "MAC")]
        mac: Option<String>,
        #[command(flatten)]
        show: ShowPassword,
    },
}

/// `--show-password`.
#[derive(Debug, Args)]
struct ShowPassword {
    /// Print the VM's SPICE password (hidden by default so it stays out of logs and screen
    /// shares).
    #[arg(long)]
    show_password: bool,
}

/// The connection settings after the `FC_*` fallbacks.
struct Fc {
    url: Option<String>,
    user: Option<String>,
    realm: Option<String>,
    ca_file: Option<PathBuf>,
    fingerprint: Option<String>,
    insecure: bool,
    allow_http: bool,
}

impl FossCloudArgs {
    /// The flags, each falling back to its `FC_*` variable; a set-but-empty variable
    /// counts as unset.
    fn with_env(&self) -> Fc {
        let env = |v: &'static str| crate::precedence::env(v).1;
        Fc {
            url: self.url.clone().or_else(|| env("FC_URL")),
            user: self.user.clone().or_else(|| env("FC_USER")),
            realm: self.realm.clone().or_else(|| env("FC_REALM")),
            ca_file: self
                .ca_file
                .clone()
                .or_else(|| env("FC_CA_FILE").map(PathBuf::from)),
            fingerprint: self.fingerprint.clone().or_else(|| env("FC_FINGERPRINT")),
            insecure: self.insecure,
            allow_http: self.allow_http,
        }
    }

    fn client(&self, needs_login: bool) -> anyhow::Result<FossCloudClient> {
        let this = self.with_env();
        let s = &this;
        let Some(url) = &s.url else {
            return Err(fail::usage(
                "no FOSS-Cloud server: set --url or FC_URL (e.g. https://fc.example.org/vm-manager); \
                 `labctl sim fosscloud` serves a simulator",
            ));
        };
        let chosen = [s.fingerprint.is_some(), s.ca_file.is_some(), s.insecure]
            .iter()
            .filter(|b| **b)
            .count();
        if chosen > 1 {
            return Err(fail::usage(
                "give at most one of --fingerprint, --ca-file and --insecure (FC_FINGERPRINT, FC_CA_FILE)",
            ));
        }
        let mut b = FossCloudClient::builder(url.clone()).allow_http(s.allow_http);
        if let Some(r) = &s.realm {
            let realm: RealmId = r.parse()?;
            b = b.realm(realm);
        }
        if let Some(fp) = &s.fingerprint {
            b = b.pin_fingerprint(Fingerprint::parse(fp)?);
        }
        if let Some(ca) = &s.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| fail::usage(format!("reading the CA file {}: {e}", ca.display())))?;
            b = b.add_root_certificate_pem(pem);
        }
        if s.insecure {
            tracing::warn!("--insecure: the FOSS-Cloud server's certificate is not checked");
            b = b.danger_accept_invalid_certs(true);
        }
        if needs_login {
            let Some(user) = &s.user else {
                return Err(fail::usage(
                    "no FOSS-Cloud user: set --user or FC_USER (and FC_PASSWORD)",
                ));
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

/// A VM with the API's field names.
fn vm_json(vm: &Vm, show_password: bool) -> Value {
    json!({
        "uuid": vm.uuid,
        "name": vm.name,
        "ip": vm.ip,
        "node": vm.node,
        "port": vm.port,
        "password": vm.password.as_ref().map(|p| if show_password { p.expose() } else { "***" }),
        "status": vm.status.as_ref().map(|s| s.as_str()),
        "type": vm.vm_type.as_ref().map(ToString::to_string),
        "subtype": vm.subtype,
        "os": vm.os,
        "pool": vm.pool.as_ref().map(|p| p.as_str()),
    })
}

fn vm_sheet(vms: &[Vm]) -> Sheet {
    let mut s = Sheet::new(&["NAME", "TYPE", "STATUS", "POOL", "SPICE"]);
    for vm in vms {
        s.row(vec![
            or_dash(vm.name.as_ref()),
            or_dash(vm.vm_type.as_ref()),
            or_dash(vm.status.as_ref()),
            or_dash(vm.pool.as_ref().map(|p| p.as_str())),
            or_dash(vm.spice_endpoint().map(|(h, p)| format!("spice://{h}:{p}"))),
        ]);
    }
    s
}

fn print_vm(vm: &Vm, show_password: bool, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => print_json(&vm_json(vm, show_password)),
        Format::Csv => {
            print!("{}", csv_with_password(vm, show_password).to_csv()?);
            Ok(())
        }
        Format::Table => {
            print!("{}", vm_sheet(std::slice::from_ref(vm)).to_table());
            match &vm.password {
                Some(pw) if show_password => println!("spice password: {}", pw.expose()),
                Some(_) => println!("spice password: *** (--show-password prints it)"),
                None => {}
            }
            Ok(())
        }
    }
}

fn csv_with_password(vm: &Vm, show: bool) -> Sheet {
    let mut s = Sheet::new(&["NAME", "TYPE", "STATUS", "POOL", "SPICE", "PASSWORD"]);
    s.row(vec![
        or_dash(vm.name.as_ref()),
        or_dash(vm.vm_type.as_ref()),
        or_dash(vm.status.as_ref()),
        or_dash(vm.pool.as_ref().map(|p| p.as_str())),
        or_dash(vm.spice_endpoint().map(|(h, p)| format!("spice://{h}:{p}"))),
        or_dash(vm.password.as_ref().map(|p| {
            if show {
                p.expose().to_owned()
            } else {
                "***".to_owned()
            }
        })),
    ]);
    s
}

fn mac(text: &Option<String>) -> anyhow::Result<Option<MacAddr>> {
    text.as_deref()
        .map(|m| m.parse::<MacAddr>())
        .transpose()
        .map_err(Into::into)
}

/// Runs a FOSS-Cloud subcommand.
pub async fn run(args: &FossCloudArgs, format: Format) -> anyhow::Result<()> {
    match &args.command {
        FossCloudCommand::Login => {
            format.not_csv("fosscloud login")?;
            let client = args.client(true)?;
            client.login().await?;
            let args = args.with_env();
            let user = args.user.as_deref().unwrap_or_default();
            let realm = client.realm().map(|r| r.as_str().to_owned());
            match format {
                Format::Json => print_json(&json!({
                    "code": fosscloud_api::Code::LoginOk.number(),
                    "user": user,
                    "realm": realm,
                }))?,
                _ => println!(
                    "login ok: {user} in realm {}",
                    realm.as_deref().unwrap_or("(the server's default)")
                ),
            }
        }
        FossCloudCommand::Realms => {
            let client = args.client(false)?;
            let realms = client.realms().await?;
            let mut s = Sheet::new(&["REALM", "DEFAULT", "NAME"]);
            for r in &realms {
                s.row(vec![
                    r.uid.as_str().to_owned(),
                    if r.default { "yes" } else { "no" }.to_owned(),
                    or_dash(r.display_name.as_ref()),
                ]);
            }
            let json: Vec<Value> = realms
                .iter()
                .map(|r| {
                    json!({"uid": r.uid.as_str(), "displayName": r.display_name, "default": r.default})
                })
                .collect();
            s.print(format, &json)?;
        }
        FossCloudCommand::List { vm_type, kind } => {
            let text = vm_type.as_deref().or(kind.as_deref()).unwrap_or("owner");
            let kind: VmKind = text.parse().map_err(|e| {
                fail::usage(format!(
                    "invalid type {text:?}: owner, dynamic, persistent or all ({e})"
                ))
            })?;
            let client = args.client(true)?;
            let vms = client.list_vms(kind).await?;
            let json: Vec<Value> = vms.iter().map(|v| vm_json(v, false)).collect();
            vm_sheet(&vms).print(format, &json)?;
        }
        FossCloudCommand::Assign { pool, show } => {
            let pool: PoolId = pool.parse()?;
            let client = args.client(true)?;
            let vm = client
                .assign(&pool)
                .await
                .with_context(|| format!("assigning a VM of pool {pool}"))?;
            print_vm(&vm, show.show_password, format)?;
        }
        FossCloudCommand::Mapping(MappingCommand::List { mac: m, show }) => {
            let m = mac(m)?;
            let client = args.client(true)?;
            let vm = client.mapping_list(m).await?;
            print_vm(&vm, show.show_password, format)?;
        }
        FossCloudCommand::Mapping(MappingCommand::Assign { pool, mac: m, show }) => {
            let pool: PoolId = pool.parse()?;
            let m = mac(m)?;
            let client = args.client(true)?;
            let vm = client.mapping_assign(&pool, m).await?;
            print_vm(&vm, show.show_password, format)?;
        }
    }
    Ok(())
}
