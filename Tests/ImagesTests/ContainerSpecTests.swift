import Testing
import TestSupport
@testable import Images

@Suite struct UserDatabaseTests {
    let users = UserDatabase(
        passwd: """
        root:x:0:0:root:/root:/bin/sh
        # a comment
        app:x:1000:1000:App:/home/app:/bin/sh
        broken line
        daemon:x:2:2::/:/bin/false
        """,
        group: """
        root:x:0:
        staff:x:50:app,daemon
        wheel:x:10:app
        app:x:1000:
        """)

    @Test func namesResolveWithTheirGroupsAndHome() throws {
        let identity = try users.resolve("app")
        #expect(identity == .init(uid: 1000, gid: 1000, groups: [1000, 50, 10], home: "/home/app"))
        #expect(try users.resolve("1000") == identity, "a uid in passwd is that user")
    }

    @Test func emptyMeansRootWithRootsHome() throws {
        #expect(try users.resolve("") == .init(uid: 0, gid: 0, groups: [0], home: "/root"))
        #expect(try UserDatabase.empty.resolve("") == .init(uid: 0, gid: 0, groups: [0], home: "/"))
    }

    @Test func anExplicitGroupReplacesTheSupplementaryOnes() throws {
        #expect(try users.resolve("app:staff") == .init(uid: 1000, gid: 50, groups: [50], home: "/home/app"))
        #expect(try users.resolve("app:4242") == .init(uid: 1000, gid: 4242, groups: [4242], home: "/home/app"))
        #expect(try users.resolve("daemon:root").gid == 0)
    }

    @Test func unknownNumbersRunAsThemselvesUnknownNamesFail() throws {
        #expect(try users.resolve("4321") == .init(uid: 4321, gid: 0, groups: [0], home: "/"))
        #expect(try users.resolve("4321:77") == .init(uid: 4321, gid: 77, groups: [77], home: "/"))
        #expect(throws: ImageError.invalidRunSpec("unable to find user nosuch: no matching entries in passwd file")) {
            try users.resolve("nosuch")
        }
        #expect(throws: ImageError.invalidRunSpec("unable to find group nogroup: no matching entries in group file")) {
            try users.resolve("app:nogroup")
        }
        #expect(throws: ImageError.self) { try users.resolve("app:") }
        #expect(throws: ImageError.self) { try users.resolve("-1") }
    }
}

@Suite struct ContainerSpecTests {
    var defaults: ImageConfiguration.RunDefaults {
        var defaults = ImageConfiguration.RunDefaults()
        defaults.Entrypoint = ["/app/entry.sh"]
        defaults.Cmd = ["default-argument"]
        defaults.Env = ["FOO=from-image", "PATH=/usr/bin:/bin", "EMPTY="]
        defaults.WorkingDir = "/home/app"
        defaults.User = "app"
        return defaults
    }
    let users = UserDatabase(passwd: "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n", group: "staff:x:50:app\n")

    func resolve(_ options: ContainerSpec.Options, defaults: ImageConfiguration.RunDefaults? = nil,
                 host: [String: String] = [:]) throws -> ContainerSpec {
        try ContainerSpec.resolve(defaults ?? self.defaults, options: options, users: users,
                                  hostEnvironment: host, defaultHostname: "0123456789ab")
    }

    @Test func theImageDefaultsAsDockerBuildsThem() throws {
        let spec = try resolve(.init())
        #expect(spec.arguments == ["/app/entry.sh", "default-argument"])
        #expect(spec.environment == ["PATH=/usr/bin:/bin", "HOSTNAME=0123456789ab", "FOO=from-image", "EMPTY=", "HOME=/home/app"])
        #expect(spec.workingDirectory == "/home/app")
        #expect(spec.identity == .init(uid: 1000, gid: 1000, groups: [1000, 50], home: "/home/app"))
        #expect(spec.hostname == "0123456789ab")
        #expect(!spec.terminal && !spec.interactive)
    }

    @Test func argumentsReplaceCmdAndKeepTheEntrypoint() throws {
        var options = ContainerSpec.Options()
        options.arguments = ["one", "two words"]
        #expect(try resolve(options).arguments == ["/app/entry.sh", "one", "two words"])
    }

    @Test func anEntrypointFlagReplacesItAndDropsCmd() throws {
        var options = ContainerSpec.Options()
        options.entrypoint = "/bin/sh"
        #expect(try resolve(options).arguments == ["/bin/sh"])
        options.arguments = ["-c", "echo $FOO; exit 42"]
        #expect(try resolve(options).arguments == ["/bin/sh", "-c", "echo $FOO; exit 42"])
        options.entrypoint = ""
        options.arguments = ["/bin/true"]
        #expect(try resolve(options).arguments == ["/bin/true"], "an empty --entrypoint clears it")
    }

    @Test func noCommandAtAllIsAnError() throws {
        var bare = ImageConfiguration.RunDefaults()
        bare.Env = ["A=b"]
        #expect(throws: ImageError.self) { try resolve(.init(), defaults: bare) }
        var options = ContainerSpec.Options()
        options.entrypoint = ""
        #expect(throws: ImageError.self) { try resolve(options) }
    }

    @Test func environmentFlagsOverrideByNameAndPassHostValues() throws {
        var options = ContainerSpec.Options()
        options.environment = ["FOO=from-flag", "NEW=1", "FROM_HOST", "NOT_ON_HOST", "EQUALS=a=b"]
        options.terminal = true
        let spec = try resolve(options, host: ["FROM_HOST": "host value"])
        #expect(spec.environment == ["PATH=/usr/bin:/bin", "HOSTNAME=0123456789ab", "FOO=from-flag", "EMPTY=", "NEW=1",
                                     "FROM_HOST=host value", "EQUALS=a=b", "TERM=xterm", "HOME=/home/app"])
        options.environment = ["=oops"]
        #expect(throws: ImageError.self) { try resolve(options) }
    }

    @Test func aDefaultPathWhenTheImageHasNone() throws {
        var defaults = self.defaults
        defaults.Env = nil
        #expect(try resolve(.init(), defaults: defaults).environment.first == "PATH=" + ContainerSpec.defaultPath)
    }

    @Test func workdirUserAndHostnameFlags() throws {
        var options = ContainerSpec.Options()
        options.workingDirectory = "/tmp"
        options.user = "0:50"
        options.hostname = "box"
        let spec = try resolve(options)
        #expect(spec.workingDirectory == "/tmp")
        #expect(spec.identity == .init(uid: 0, gid: 50, groups: [50], home: "/root"))
        #expect(spec.environment.contains("HOSTNAME=box") && spec.environment.contains("HOME=/root"))
        options.workingDirectory = "relative"
        #expect(throws: ImageError.invalidRunSpec("the working directory 'relative' is invalid, it needs to be an absolute path")) {
            try resolve(options)
        }
        options.workingDirectory = nil
        options.hostname = "has space"
        #expect(throws: ImageError.self) { try resolve(options) }
        options.hostname = nil
        options.user = "nosuch"
        #expect(throws: ImageError.self) { try resolve(options) }
    }

    @Test func nulBytesCannotReachTheGuest() throws {
        var options = ContainerSpec.Options()
        options.arguments = ["a\0b"]
        #expect(throws: ImageError.self) { try resolve(options) }
        options.arguments = []
        options.environment = ["X=a\0b"]
        #expect(throws: ImageError.self) { try resolve(options) }
    }
}
