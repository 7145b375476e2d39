import SkiffCLI
import SkiffKit

skiffStartTime = MonotonicClock.now()
Skiff.main()
