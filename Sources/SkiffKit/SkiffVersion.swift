/// The version `skiff --version` and `skiff-oci --version` print (runc's
/// `--version` names its own and the runtime spec's; containerd and podman
/// log it).
public enum SkiffVersion {
    public static let number = "0.1.0"
}
