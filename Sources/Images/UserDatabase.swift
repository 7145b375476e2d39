/// The image's /etc/passwd and /etc/group, for resolving `-u` and the
/// image's User the way runc does: names looked up, numbers taken as they are.
public struct UserDatabase: Sendable, Equatable, Codable {
    public struct User: Sendable, Equatable, Codable {
        public let name: String, uid: UInt32, gid: UInt32, home: String
    }
    public struct Group: Sendable, Equatable, Codable {
        public let name: String, gid: UInt32, members: [String]
    }

    public let users: [User]
    public let groups: [Group]

    /// Parses the two files' text; malformed lines and comments are skipped, as libc does.
    public init(passwd: String, group: String) {
        users = passwd.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 7, !fields[0].hasPrefix("#"), let uid = UInt32(fields[2]), let gid = UInt32(fields[3]) else { return nil }
            return User(name: String(fields[0]), uid: uid, gid: gid, home: String(fields[5]))
        }
        groups = group.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 4, !fields[0].hasPrefix("#"), let gid = UInt32(fields[2]) else { return nil }
            return Group(name: String(fields[0]), gid: gid,
                         members: fields[3].split(separator: ",").map { String($0) })
        }
    }

    public static let empty = UserDatabase(passwd: "", group: "")

    /// Who a process runs as.
    public struct Identity: Sendable, Equatable {
        public var uid: UInt32, gid: UInt32
        /// Supplementary groups (the primary one included, as login does).
        public var groups: [UInt32]
        public var home: String
        public init(uid: UInt32, gid: UInt32, groups: [UInt32], home: String) {
            self.uid = uid; self.gid = gid; self.groups = groups; self.home = home
        }
    }

    /// Resolves `user[:group]` (names or numbers; empty means root).
    /// A name must exist; a number need not (it runs with group 0 and home /,
    /// as under runc). Without an explicit group, the user's groups are its
    /// passwd group plus every group that lists it as a member.
    public func resolve(_ specification: String) throws(ImageError) -> Identity {
        let parts = specification.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let userPart = parts[0], groupPart = parts.count > 1 ? parts[1] : nil
        var identity = Identity(uid: 0, gid: 0, groups: [], home: "/")
        var userName: String?
        if !userPart.isEmpty {
            if let entry = users.first(where: { $0.name == userPart }) ?? UInt32(userPart).flatMap({ uid in users.first { $0.uid == uid } }) {
                identity = Identity(uid: entry.uid, gid: entry.gid, groups: [], home: entry.home)
                userName = entry.name
            } else if let uid = UInt32(userPart), uid != UInt32.max {
                identity.uid = uid
            } else {
                throw .invalidRunSpec("unable to find user \(userPart): no matching entries in passwd file")
            }
        } else if let root = users.first(where: { $0.uid == 0 }) {
            identity.home = root.home
            userName = root.name
        }
        if let groupPart {
            guard !groupPart.isEmpty else { throw .invalidRunSpec("empty group in user '\(specification)'") }
            if let group = groups.first(where: { $0.name == groupPart }) {
                identity.gid = group.gid
            } else if let gid = UInt32(groupPart), gid != UInt32.max {
                identity.gid = gid
            } else {
                throw .invalidRunSpec("unable to find group \(groupPart): no matching entries in group file")
            }
            identity.groups = [identity.gid]
        } else {
            var supplementary = [identity.gid]
            if let userName {
                for group in groups where group.members.contains(userName) && !supplementary.contains(group.gid) {
                    supplementary.append(group.gid)
                }
            }
            identity.groups = supplementary
        }
        return identity
    }
}
