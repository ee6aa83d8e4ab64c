//! Which unit directives wayback converts, which it ignores because they do not change what runs, and what
//! it says about every other one. This table is the source of docs/units.md's lists: a directive that is
//! neither converted nor harmless is reported, never dropped silently.

/// How a directive is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handling {
    /// Converted into the profile (convert.rs reads it).
    Converted,
    /// Has no effect on what runs in an instance (documentation, enablement, ordering against units that are
    /// not listed, journal metadata). Not reported.
    Harmless,
    /// A boolean: reported with this message only when it is switched on.
    IfTrue(&'static str),
    /// Reported with this message.
    Reported(&'static str),
}

use Handling::{Converted, Harmless, IfTrue, Reported};

const SANDBOX: &str = "sandboxing is not applied: the instance as a whole is isolated (own network namespace, tmpfs root, host /usr and /etc read-only, only the binds writable), but its processes are not sandboxed from each other";
const LIMITS: &str =
    "resource limits and scheduling are not applied: processes inherit the instance's limits";
const CGROUP: &str =
    "cgroup settings are not applied: wayback's processes share the container's cgroup";
const RESTART: &str =
    "not honoured: wayback does not restart processes; when one exits, the instance stops";
const STOPPING: &str = "not honoured: wayback stops each process with its stop signal (KillSignal=), then SIGKILL after 20 s, newest process first";
const TIMEOUT: &str =
    "not honoured: wayback waits up to 120 s for each process's readiness and 20 s for its stop";
const CONDITION: &str = "not checked: the process is started regardless";
const CREDENTIALS: &str = "credentials are not provided: $CREDENTIALS_DIRECTORY does not exist in the instance; pass the secret another way (e.g. a bind or --env)";
const LOGGING: &str =
    "not honoured: stdout and stderr go to the instance log (`wayback logs NAME`)";
const PRIVILEGES: &str = "not honoured: processes run as root or as User= with the user's groups from the host's /etc/group; capabilities and securebits are not changed (a port below 1024, what CAP_NET_BIND_SERVICE is mostly for, can be bound by any user in the instance's network namespace)";
const NAMESPACE_PATHS: &str = "not applied: only the profile's binds are writable; the host's /usr and /etc are read-only and everything else is the instance's tmpfs";

/// What to do with `key` in `[section]` of a service unit.
pub(crate) fn handling(section: &str, key: &str) -> Handling {
    if key.starts_with("X-") || section.starts_with("X-") || section == "Install" {
        return Harmless;
    }
    match (section, key) {
        ("Unit", k) => unit_section(k),
        ("Service", k) => service_section(k),
        _ => Reported("section is not read by wayback"),
    }
}

fn unit_section(key: &str) -> Handling {
    match key {
        "Description" | "After" | "Before" | "Requires" | "Wants" | "BindsTo" | "Requisite"
        | "Upholds" => Converted,
        "Documentation" | "DefaultDependencies" | "PartOf" | "ReloadPropagatedFrom"
        | "PropagatesReloadTo" | "StopWhenUnneeded" | "RefuseManualStart" | "RefuseManualStop"
        | "AllowIsolate" | "IgnoreOnIsolate" | "SourcePath" | "CollectMode"
        | "PropagatesStopTo" | "StopPropagatedFrom" | "StartLimitIntervalSec"
        | "StartLimitBurst" | "StartLimitAction" => Harmless,
        "Conflicts" => Reported("not honoured: wayback starts all listed units"),
        "OnFailure" | "OnSuccess" | "OnFailureJobMode" | "OnSuccessJobMode" | "FailureAction"
        | "SuccessAction" | "FailureActionExitStatus" | "SuccessActionExitStatus"
        | "JobTimeoutSec" | "JobRunningTimeoutSec" | "JobTimeoutAction" | "RebootArgument" => {
            Reported("not honoured: wayback runs no units on failure or success; a process that exits stops the instance")
        }
        "RequiresMountsFor" | "WantsMountsFor" => Reported(
            "not checked: paths come from the host (read-only) or the profile's binds; add the service's state paths to `binds`",
        ),
        k if k.starts_with("Condition") || k.starts_with("Assert") => Reported(CONDITION),
        _ => Reported("unknown to wayback: not honoured"),
    }
}

fn service_section(key: &str) -> Handling {
    match key {
        "Type" | "ExecStartPre" | "ExecStart" | "ExecStartPost" | "User" | "Group"
        | "SupplementaryGroups" | "Environment" | "EnvironmentFile" | "UnsetEnvironment"
        | "WorkingDirectory" | "RuntimeDirectory" | "StateDirectory" | "LogsDirectory"
        | "CacheDirectory" | "ConfigurationDirectory" | "RuntimeDirectoryMode"
        | "StateDirectoryMode" | "LogsDirectoryMode" | "CacheDirectoryMode"
        | "ConfigurationDirectoryMode" | "PIDFile" | "KillSignal" | "RemainAfterExit"
        | "UMask" | "Sockets" | "DynamicUser" => Converted,
        "GuessMainPID" | "SyslogIdentifier" | "SyslogFacility" | "SyslogLevel"
        | "SyslogLevelPrefix" | "LogLevelMax" | "LogExtraFields" | "LogRateLimitIntervalSec"
        | "LogRateLimitBurst" | "LogNamespace" | "RuntimeDirectoryPreserve"
        | "TimeoutStartFailureMode" | "TimeoutStopFailureMode" | "NotifyAccess"
        | "FileDescriptorStoreMax" | "FileDescriptorStorePreserve" | "ExitType" => Harmless,
        "ExecStop" | "ExecStopPost" => Reported(
            "not run: wayback stops the service with its stop signal (KillSignal=); put an orderly stop into KillSignal= or edit `stop_signal`",
        ),
        "ExecReload" | "ExecReloadPost" => Reported("not used: wayback never reloads a service"),
        "ExecCondition" => Reported(CONDITION),
        "Restart" | "RestartSec" | "RestartSteps" | "RestartMaxDelaySec" | "RestartMode"
        | "RestartPreventExitStatus" | "RestartForceExitStatus" | "SuccessExitStatus"
        | "StartLimitIntervalSec" | "StartLimitBurst" | "WatchdogSec" => Reported(RESTART),
        "KillMode" | "SendSIGKILL" | "SendSIGHUP" | "FinalKillSignal" | "RestartKillSignal"
        | "WatchdogSignal" | "TimeoutStopSec" | "TimeoutAbortSec" => Reported(STOPPING),
        "TimeoutSec" | "TimeoutStartSec" | "RuntimeMaxSec" | "RuntimeRandomizedExtraSec" => {
            Reported(TIMEOUT)
        }
        "BusName" => Reported("no D-Bus in the instance: the name is never acquired, readiness cannot wait for it"),
        "PassEnvironment" => Reported("the service manager's environment is not passed: set the variables in the profile's `env`"),
        "LoadCredential" | "LoadCredentialEncrypted" | "SetCredential" | "SetCredentialEncrypted"
        | "ImportCredential" => Reported(CREDENTIALS),
        "StandardInput" | "StandardOutput" | "StandardError" | "StandardInputText"
        | "StandardInputData" | "TTYPath" => Reported(LOGGING),
        "PrivateTmp" => IfTrue("approximated: the instance's /tmp and /var/tmp are already private to the instance, but shared by all its processes"),
        "PrivateNetwork" => IfTrue("approximated: the instance has its own network namespace (loopback and the veth to the host), shared by all its processes"),
        "PrivateDevices" | "PrivateUsers" | "PrivateIPC" | "PrivateMounts" | "ProtectHome"
        | "ProtectKernelTunables" | "ProtectKernelModules" | "ProtectKernelLogs"
        | "ProtectControlGroups" | "ProtectClock" | "ProtectHostname" | "ProtectProc"
        | "NoNewPrivileges" | "LockPersonality" | "MemoryDenyWriteExecute" | "RestrictRealtime"
        | "RestrictSUIDSGID" | "RemoveIPC" => IfTrue(SANDBOX),
        "ProtectSystem" | "ProcSubset" | "RestrictAddressFamilies" | "RestrictNamespaces"
        | "RestrictFileSystems" | "RestrictNetworkInterfaces" | "SystemCallFilter"
        | "SystemCallArchitectures" | "SystemCallErrorNumber" | "SystemCallLog"
        | "DevicePolicy" | "DeviceAllow" | "IPAddressAllow" | "IPAddressDeny"
        | "SocketBindAllow" | "SocketBindDeny" | "KeyringMode" | "NetworkNamespacePath"
        | "IPCNamespacePath" | "AppArmorProfile" | "SELinuxContext" | "SmackProcessLabel" => {
            Reported(SANDBOX)
        }
        "ReadWritePaths" | "ReadOnlyPaths" | "InaccessiblePaths" | "ExecPaths" | "NoExecPaths"
        | "ReadWriteDirectories" | "ReadOnlyDirectories" | "InaccessibleDirectories"
        | "BindPaths" | "BindReadOnlyPaths" | "TemporaryFileSystem" | "RootDirectory"
        | "RootImage" | "RootEphemeral" | "MountAPIVFS" | "MountFlags" | "MountImages"
        | "ExtensionImages" | "ExtensionDirectories" => Reported(NAMESPACE_PATHS),
        "CapabilityBoundingSet" | "AmbientCapabilities" | "SecureBits" | "PAMName" => {
            Reported(PRIVILEGES)
        }
        "Slice" | "Delegate" | "DelegateSubgroup" | "MemoryAccounting" | "CPUAccounting"
        | "IOAccounting" | "TasksAccounting" | "IPAccounting" | "OOMPolicy" | "ManagedOOMSwap"
        | "ManagedOOMMemoryPressure" | "ManagedOOMMemoryPressureLimit" => Reported(CGROUP),
        k if k.starts_with("Limit")
            || matches!(
                k,
                "Nice" | "OOMScoreAdjust" | "IOSchedulingClass" | "IOSchedulingPriority"
                    | "TimerSlackNSec" | "Personality" | "CoredumpFilter" | "CoredumpReceive"
            ) =>
        {
            Reported(LIMITS)
        }
        k if k.starts_with("Memory")
            || k.starts_with("CPU")
            || k.starts_with("IO")
            || k.starts_with("Tasks")
            || k.starts_with("Startup")
            || k.starts_with("BlockIO")
            || k.starts_with("Allowed") =>
        {
            Reported(CGROUP)
        }
        _ => Reported("unknown to wayback: not honoured"),
    }
}

/// systemd's boolean parsing; `None` if `v` is not a boolean.
pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

/// Whether a non-boolean setting of an `IfTrue` directive switches something on (`ProtectHome=read-only`,
/// `PrivateUsers=self`, …): anything that is not a false boolean does.
pub(crate) fn switched_on(v: &str) -> bool {
    parse_bool(v) != Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(handling("Service", "ExecStart"), Converted);
        assert_eq!(handling("Install", "WantedBy"), Harmless);
        assert_eq!(handling("Unit", "Documentation"), Harmless);
        assert!(matches!(handling("Service", "ProtectSystem"), Reported(_)));
        assert!(matches!(handling("Service", "PrivateTmp"), IfTrue(_)));
        assert!(matches!(handling("Service", "MemoryMax"), Reported(m) if m == CGROUP));
        assert!(matches!(handling("Service", "LimitNOFILE"), Reported(m) if m == LIMITS));
        assert!(matches!(handling("Unit", "ConditionPathExists"), Reported(m) if m == CONDITION));
        assert!(
            matches!(handling("Service", "Frobnicate"), Reported(m) if m.starts_with("unknown"))
        );
        assert!(matches!(handling("Socket", "ListenStream"), Reported(_)));
        assert_eq!(handling("Service", "X-Custom"), Harmless);
        assert!(switched_on("read-only") && switched_on("yes") && !switched_on("false"));
    }
}
