/*
 * Runs another main class and stops the JVM, through its shutdown hooks, when standard input
 * reaches end-of-file.
 *
 * infra/provision.ts starts Kafka and OpenSearch through this class with stdin connected to a pipe
 * held by the Node.js process that started them: when that process dies in any way (even SIGKILL,
 * or a Jest worker torn down without calling stop()), the pipe closes and the server shuts down
 * cleanly instead of living on as an orphan. Servers started detached (infra/cli.ts up) are run
 * without this class.
 *
 * Usage: java -cp ... HeraldParentWatch <main class> [args ...]
 */

import java.io.InputStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.util.Arrays;

public final class HeraldParentWatch {

    private HeraldParentWatch() {}

    public static void main(final String[] args) throws Throwable {
        if (args.length < 1) {
            System.err.println("usage: HeraldParentWatch <main class> [args ...]");
            System.exit(2);
        }
        final Thread watcher = new Thread(() -> {
            final byte[] buffer = new byte[256];
            try {
                final InputStream in = System.in;
                while (in.read(buffer) >= 0) {
                    // the parent writes nothing; anything it sends is ignored
                }
            } catch (final Throwable e) {
                // a broken pipe means the same as end-of-file
            }
            System.err.println("HeraldParentWatch: parent process is gone (stdin closed), shutting down");
            System.exit(0);
        }, "herald-parent-watch");
        watcher.setDaemon(true);
        watcher.start();

        final Method main = Class.forName(args[0]).getMethod("main", String[].class);
        try {
            main.invoke(null, (Object) Arrays.copyOfRange(args, 1, args.length));
        } catch (final InvocationTargetException e) {
            throw e.getCause();
        }
    }
}
