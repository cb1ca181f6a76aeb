import Packet
