"""Feature names shared by datasets, transforms and policies (LeRobot's names), in the flax-free core."""

STATE = "observation.state"  # [A] the robot's joint positions, the embodiment's order
ACTION = "action"  # [A] the joint-position targets sent to the robot
ENV_STATE = "observation.environment_state"  # optional: object positions (simulation), a training-only target
IMAGE_PREFIX = "observation.images."  # + camera name: uint8 [h, w, 3] frames
