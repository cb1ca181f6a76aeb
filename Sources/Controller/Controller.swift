import Packet
import TOMLKit
import CNetlink
