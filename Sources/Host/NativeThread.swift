import Glibc

/// A POSIX thread running a closure. vCPUs need threads of their own (KVM ties a
/// vCPU to the thread that runs it, and kicks are per thread), which Swift
/// concurrency's pooled executors cannot give.
public struct NativeThread: Sendable {
    private final class Body {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }

    public let handle: pthread_t

    /// Starts `body` on a new thread with an 8 MiB stack.
    public init(_ body: @escaping @Sendable () -> Void) throws(SystemCallError) {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, 8 << 20)
        let context = Unmanaged.passRetained(Body(body)).toOpaque()
        var handle = pthread_t()
        let result = pthread_create(&handle, &attributes, { context in
            let body = Unmanaged<Body>.fromOpaque(context!).takeRetainedValue()
            body.run()
            return nil
        }, context)
        guard result == 0 else {
            Unmanaged<Body>.fromOpaque(context).release()
            throw SystemCallError("pthread_create", result)
        }
        self.handle = handle
    }

    public func join() { pthread_join(handle, nil) }
    public func detach() { pthread_detach(handle) }
}
